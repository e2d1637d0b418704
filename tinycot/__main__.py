from tinycot.cli import main

main()
