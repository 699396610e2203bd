"""The floor: block-centred bicubic interpolation of the LrHSI (ignores the HrMSI)."""
from __future__ import annotations

from ..degrade.spatial import upsample
from .base import Context, Method
from .registry import register


@register
class Upsample(Method):
    """Keys bicubic (a = −0.5) interpolation with LR pixel i at HR coordinate i·s + (s − 1)/2."""

    name = "upsample"
    family = "floor"
    paper = "Keys, IEEE TASSP 1981 (cubic convolution)"
    summary = "bicubic interpolation of the LrHSI: the floor every fusion method must beat"
    presets = {"default": {"kind": "cubic"}}

    def fuse(self, lr, msi, ctx: Context):
        return upsample(lr, ctx.scale, kind=self.params["kind"], boundary=ctx.boundary)
