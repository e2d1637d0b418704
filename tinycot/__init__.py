"""The tiny default model: the shapes task it answers (`task`), its builder and shipped weights
(`model`, `data/`), and its training (`examples`, `train`, `probes`, `check`, `report`).
Not part of the server: the server loads the model like any checkpoint."""
