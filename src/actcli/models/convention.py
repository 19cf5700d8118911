"""A model's input convention: how its publisher fed it clips, so actcli feeds it the same way.

Every model takes clips as actcli hands them, ``float [B, 3, T, H, W]`` RGB, normalised per
channel with the model's ``mean`` and ``std`` (frames scaled to ``[0, 1]`` first). For evaluation
the frames' short side is resized to ``resize x crop`` pixels, then the centre ``crop x crop``
square is kept (torchvision's video weights: 128 -> 112, i.e. 1.143; VideoMAE: 224 -> 224, 1.0;
ViViT: 256 -> 224). ``layout`` records what the network itself takes (``BCTHW`` for
pytorchvideo and torchvision, ``BTCHW`` for Hugging Face's ``pixel_values``); the family's
wrapper converts, so everything else in actcli sees ``[B, C, T, H, W]``.

A wrong convention is a silent accuracy loss, so it travels with the model: the zoo entry
states it, checkpoints and exports store it, and ``test``, ``predict``, ``benchmark`` and
``export`` read it back from there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class Convention:
    """Normalisation ``mean``/``std`` (RGB, on ``[0, 1]`` pixels), evaluation resize (short side as a
    multiple of the crop) and the network's own input layout."""

    mean: Triple = (0.45, 0.45, 0.45)
    std: Triple = (0.225, 0.225, 0.225)
    resize: float = 1.0
    layout: str = "BCTHW"

    def short_side(self, crop: int) -> int:
        """Pixels of the short side before the centre crop, for clips of ``crop`` pixels."""
        return max(crop, int(round(self.resize * crop)))

    def describe(self) -> str:
        """``mean 0.45/0.45/0.45 std 0.225/...`` for tables."""
        def join(values: Triple) -> str:
            return "/".join(f"{v:g}" for v in values)

        return f"mean {join(self.mean)}, std {join(self.std)}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Convention:
        """A stored convention; None (a checkpoint from before conventions) -> pytorchvideo's."""
        if not data:
            return PYTORCHVIDEO
        return cls(tuple(data["mean"]), tuple(data["std"]), float(data.get("resize", 1.0)),
                   str(data.get("layout", "BCTHW")))


PYTORCHVIDEO = Convention()  # pytorchvideo's Kinetics statistics, short side = crop
IMAGENET = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
