from evaluation.compare.run import main

main()
