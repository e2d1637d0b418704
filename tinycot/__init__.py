"""The tiny default model: the shapes task it answers (`task`), its builder and shipped weights
(`model`, `data/`), and its training (`examples`, `train`, `probes`, `check`, `report`); and
tiny random checkpoints of deployed VLM families (`architectures`). Not part of the server: the
server loads these models like any checkpoint."""
