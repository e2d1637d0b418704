"""Training-time auxiliary losses of the tiny model (`server/train_tiny.py`): linear probes on
hidden states that give the tiny model denser signals than next-token prediction alone. They
are trained with the model and dropped when it is saved; the saved model is a plain Idefics3
checkpoint."""

from __future__ import annotations

from typing import Any


class PerceptionProbe:
    """Training-time auxiliary loss: a linear probe reads each local image token (the
    connector's output) and must name the shape in its grid cell. It makes the vision tower
    learn to see within minutes; it is not saved with the model."""

    def __init__(self, model: Any) -> None:
        import torch

        from tinycot.examples import CELL_CLASSES

        self.head = torch.nn.Linear(model.config.text_config.hidden_size, CELL_CLASSES)
        self.features: Any = None
        model.model.connector.register_forward_hook(self._keep)

    def _keep(self, module: Any, inputs: Any, output: Any) -> None:
        self.features = output

    def loss(self, cells: Any) -> Any:
        import torch

        batch, tokens = cells.shape
        local = self.features.view(batch, -1, *self.features.shape[1:])[:, :-1]  # no global
        logits = self.head(local.reshape(batch, tokens, -1))
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 cells.reshape(-1))


class ErrorProbe:
    """Training-time auxiliary loss for the verifier and the judge: on their examples a linear
    probe reads the text model's hidden state after decoder layer `layer` at each token of the
    candidates and must say whether that candidate has gone wrong by then. A verdict token
    alone is one label per prompt, too thin a signal for the tiny model to start verifying;
    per-token error labels teach it to notice mistakes where they are. The layer matters: the
    verdict token can read, by attention, only what the candidate's tokens hold below the last
    layer, so the probe reads a middle layer (on the last one, the error loss fell but the
    verdict stayed at chance). Not saved with the model."""

    def __init__(self, model: Any, layer: int | None = None) -> None:
        import torch

        layers = model.model.text_model.layers
        self.layer = len(layers) // 2 - 1 if layer is None else layer
        self.head = torch.nn.Linear(model.config.text_config.hidden_size, 1)
        self.hidden: Any = None
        layers[self.layer].register_forward_hook(self._keep)

    def _keep(self, module: Any, inputs: Any, output: Any) -> None:
        self.hidden = output[0] if isinstance(output, tuple) else output

    def loss(self, errors: Any) -> Any:
        import torch

        from tinycot.examples import IGNORE

        labelled = errors != IGNORE
        if not labelled.any():
            return torch.zeros(())
        logits = self.head(self.hidden[labelled]).squeeze(-1)
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits, errors[labelled].float())
