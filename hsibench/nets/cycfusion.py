"""CycFusion: unsupervised HSI–MSI fusion by cycle consistency between the LrHSI and HrMSI domains.

Shi, Zhang, Altmann, Chen, "Unsupervised Hyperspectral and Multispectral Image Fusion Based on the
Cycle Consistency" (arXiv 2307.03413). The official repository holds only a README, so this is a
re-implementation from the paper; the departures are listed below and in ``docs/methods.md``.

Model, with Y the LrHSI (L×h×w), Z the HrMSI (l×H×W), s = H/h:

* F_y (PSF): one s×s kernel shared by all bands, stride s (eq. 2), softmax-normalised (eq. 4);
  F_z (SRF): a 1×1 conv whose rows are softmax-normalised over the HS bands (eq. 7). Both are the
  suite's :class:`~hsibench.nets.layers.PSFLayer` / :class:`~hsibench.nets.layers.SRFLayer` with
  ``param="softmax"``, i.e. the paper's parameterisation (the PSF layer applies the kernel with the
  suite's block-centred geometry, ``docs/conventions.md`` §2). Kaiming-normal logits (Algorithm 1) are handed to
  the layers as the kernels they define; the layers mix 1e-3 of the uniform kernel into a given start.
* G_y (spatial up-sampling): log2(s) interpolation blocks ``ReLU(IN(Conv3×3(bicubic↑2(·))))`` (5 for
  s = 32 in the paper; block i has its own weights and the Table II width of row i), then the
  refining block ``σ(Conv1×1(ReLU(IN(Conv1×1(·)))))`` (our reconstruction of the
  missing eq. 9). G_z (spectral up-sampling, eq. 10): five ``ReLU(IN(Conv1×1))`` layers, then
  ``σ(Conv1×1)``. Table II widths: G_y 32-64-128-128-128 + refine 128, G_z 32-64-128-128-128 (the
  missing Table II row is 128: the parameter count then matches Table V's 0.47 M for CAVE).
  IN layers are affine (the paper counts their 2·C parameters); convs Kaiming-normal, zero bias.
* Losses (eqs. 12, 14, 15, 16), all weights 1: ``mm = ‖Z − F_z(G_y(Y))‖ + ‖Y − F_y(G_z(Z))‖``,
  ``cyc = ‖Y − F_y(G_z(F_z(G_y(Y))))‖ + ‖Z − F_z(G_y(F_y(G_z(Z))))‖``, ``ide = ‖G_y(Y) − G_z(Z)‖``.
* Output (eq. 17): ``X̂ = ½ (G_y(Y) + G_z(Z))``.
* Algorithm 1: pre-training of the PSF/SRF logits alone on eq. 18 ``‖F_z(Y) − F_y(Z)‖₁``
  (Kaiming-normal logits, Adam lr 1e-3, 10 000 iterations; the suite's ``stage1_iterations`` /
  ``stage1_lr`` keys, reported with the ``stage1_`` info prefix), then training of all of Θ (G_y, G_z and
  the pre-trained PSF/SRF, fine-tuned) with Adam and a one-cycle schedule: 10 000 warm-up + 20 000
  cosine-annealing iterations.

Choices and departures (also in ``CycFusion.deviations`` and the config):

* **Maximum lr 1e-3** (``lr``): the paper gives it only in its Fig. 3, which the seed text lacks;
  1e-3 is the paper's pre-training lr.
* **One-cycle shape**: the engine's ``cosine`` schedule with a linear warm-up from ~0 over
  ``warmup`` iterations, then cosine to 0 (PyTorch's ``OneCycleLR`` warms up along a cosine from
  max/25 and ends at max/2.5e5). With ``ctx.iterations`` the warm-up and the pre-training are
  scaled by the same ratio, so a shortened budget keeps the paper's 1/3 + 2/3 shape.
* **L1 reduction: mean per term**: the terms mix LR- and HR-sized images and
  the paper weights them equally; a sum would let the HR terms dominate by s².
* **G_y widths for s ≠ 32**: the first log2(s) Table II widths (32-64-128 at s = 8); widths beyond
  the table repeat its last one. A scale that is not a power of two (≥ 2) is
  :class:`~hsibench.methods.NotApplicable` (the ×2 interpolation blocks cannot reach it; recorded as
  "not applicable", not as a failure).
* ``width_mult`` (1): the paper's text says the hidden widths are doubled for Chikusei/Pavia, but its
  Table V parameter counts match the un-doubled widths, so 1 is kept everywhere.
* Zero padding in the 3×3 convs; bicubic with ``align_corners=False`` (neither is stated).
* Knowledge modes: ``oracle`` = the paper's CycFusion-noblind (pre-training skipped, PSF/SRF frozen
  at the truth, held exactly by the layers' frozen clamp form);
  ``estimated``: the PSF/SRF logits start from the estimate (log of the kernel, mixed with 1e-3 of
  the uniform one) instead of Kaiming-normal and the pre-training is skipped (the estimate takes its
  place), then the joint training fine-tunes them as in the blind case; ``srf_support``: masked softmax, zero SRF weight outside the band coverage; ``blind``:
  softmax over every HS band (the paper's setting).
* Presets. ``paper`` (= ``default``): everything above. ``fast``: the paper's networks, losses and
  learning rates with the schedules compressed: pre-training 1000 iterations, training
  660 (220 warm-up + 440 cosine), plateau stop on after 400; nothing else changes. ``small``
  (its own deviations, the former ``fast``: results labelled ``cycfusion[fast]`` before the presets
  were split used it): widths G_y 16-16-32(-32-32), refine 32, G_z 16-32-32-32-32;
  pre-training 1000 iterations at lr 1e-2 (LR-sized, so cheap); training 600 iterations, one-cycle
  with 200 warm-up, **max lr 5e-2** and the PSF/SRF fine-tuned at 0.02× that (= the paper's 1e-3),
  plateau stop on. At 600 iterations the one-cycle peak matters most (CAVE balloons 128×128 centre
  crop, s = 8, blind, no multiplier, 800 pre-training iterations; bicubic 30.2 dB): max lr 2e-3
  33.8 dB, 5e-3 37.9, 1e-2 39.3, 2e-2 40.6, 5e-2 41.4. Fine-tuning the PSF at the full large lr lets
  it drift from its pre-trained estimate (relative error 0.027 → 0.07-0.12) for at most 0.4 dB (at
  2e-2; none at 5e-2), hence the 0.02× multiplier (final error 0.053, 41.4 dB).

Measured seconds per iteration of the presets: ``reports/net_budgets.md``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..methods.base import Context, MethodError, NotApplicable
from ..methods.registry import register
from .engine import ENGINE_DEFAULTS, NetMethod, TrainConfig, train
from .layers import PSFLayer, SRFLayer, degradation_layers, kaiming_init

__all__ = ["CycFusion", "CycFusionModel", "SpatialUp", "SpectralUp", "n_interp_blocks"]

#: Table II (CAVE): widths of the five interpolation blocks of G_y, its refining 1×1 conv, and G_z.
PAPER_SPATIAL_WIDTHS = (32, 64, 128, 128, 128)
PAPER_REFINE_WIDTH = 128
PAPER_SPECTRAL_WIDTHS = (32, 64, 128, 128, 128)


def n_interp_blocks(scale: int) -> int:
    """log2(scale) for a power of two ≥ 2; :class:`NotApplicable` otherwise."""
    s = int(scale)
    if s < 2 or s & (s - 1):
        raise NotApplicable(
            f"CycFusion upsamples by x2 interpolation blocks, so the scale must be a power of two >= 2; got {scale}"
        )
    return s.bit_length() - 1


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean-reduced L1 (one mean per term, so LR- and HR-sized terms weigh alike)."""
    return (a - b).abs().mean()


def _conv_in_relu(c_in: int, c_out: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.InstanceNorm2d(c_out, affine=True), nn.ReLU()]


class SpatialUp(nn.Module):
    """G_y: ``n_blocks`` × [bicubic ×2 → Conv3×3 → IN → ReLU], then Conv1×1 → IN → ReLU → Conv1×1 → σ."""

    def __init__(self, n_hs: int, n_blocks: int, widths, refine_width: int):
        super().__init__()
        widths = [int(widths[min(i, len(widths) - 1)]) for i in range(n_blocks)]
        c = n_hs
        blocks = []
        for w in widths:
            blocks.append(nn.Sequential(*_conv_in_relu(c, w, 3)))
            c = w
        self.blocks = nn.ModuleList(blocks)
        self.refine = nn.Sequential(*_conv_in_relu(c, int(refine_width), 1), nn.Conv2d(int(refine_width), n_hs, 1))
        kaiming_init(self)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            y = block(F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False))
        return torch.sigmoid(self.refine(y))


class SpectralUp(nn.Module):
    """G_z: pointwise CNN, [Conv1×1 → IN → ReLU] per hidden width, then Conv1×1 → σ (eq. 10)."""

    def __init__(self, n_ms: int, n_hs: int, widths):
        super().__init__()
        layers: list[nn.Module] = []
        c = n_ms
        for w in widths:
            layers += _conv_in_relu(c, int(w), 1)
            c = int(w)
        layers.append(nn.Conv2d(c, n_hs, 1))
        self.body = kaiming_init(nn.Sequential(*layers))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(z))


class CycFusionModel(nn.Module):
    """The four modules F_y (PSF), F_z (SRF), G_y (spatial up), G_z (spectral up) and the losses."""

    def __init__(self, n_hs: int, n_ms: int, scale: int, psf: PSFLayer, srf: SRFLayer,
                 spatial_widths=PAPER_SPATIAL_WIDTHS, refine_width: int = PAPER_REFINE_WIDTH,
                 spectral_widths=PAPER_SPECTRAL_WIDTHS):
        super().__init__()
        self.g_y = SpatialUp(n_hs, n_interp_blocks(scale), spatial_widths, refine_width)
        self.g_z = SpectralUp(n_ms, n_hs, spectral_widths)
        self.psf = psf
        self.srf = srf

    def groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "spatial_up": list(self.g_y.parameters()),
            "spectral_up": list(self.g_z.parameters()),
            "psf": list(self.psf.parameters()),
            "srf": list(self.srf.parameters()),
        }

    def project(self) -> None:
        self.psf.project()  # no-op for the softmax parameterisation
        self.srf.project()

    def losses(self, y: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted eq. 12, 14 and 15 terms of one forward pass."""
        x_spa = self.g_y(y)  # LrHSI -> HrHSI
        x_spe = self.g_z(z)  # HrMSI -> HrHSI
        z_fwd = self.srf(x_spa)  # forward translation LrHSI -> HrMSI
        y_rev = self.psf(x_spe)  # reverse translation HrMSI -> LrHSI
        y_cyc = self.psf(self.g_z(z_fwd))
        z_cyc = self.srf(self.g_y(y_rev))
        return {
            "mm": _l1(z, z_fwd) + _l1(y, y_rev),
            "cyc": _l1(y, y_cyc) + _l1(z, z_cyc),
            "ide": _l1(x_spa, x_spe),
        }

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Eq. 17: the average of the two branches."""
        return 0.5 * (self.g_y(y) + self.g_z(z))

    def pretrain_loss(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Eq. 18: LrMSI consistency ‖F_z(Y) − F_y(Z)‖₁."""
        return _l1(self.srf(y), self.psf(z))


def _kaiming_degradation(ctx: Context, n_hs: int, n_ms: int, psf_size: int | None, param: str):
    """PSF/SRF layers whose logits start Kaiming-normal (Algorithm 1), for ``blind``/``srf_support``."""
    s = int(ctx.scale)
    k = int(psf_size or s)
    theta = torch.empty(k, k)
    nn.init.kaiming_normal_(theta, a=0, mode="fan_in")  # std sqrt(2/k)
    k0 = torch.softmax(theta.flatten().double(), 0).view(k, k).numpy()
    coverage = None
    if ctx.mode == "srf_support" and ctx.coverage is not None:
        coverage = np.asarray(ctx.coverage, bool)
    mask = np.ones((n_ms, n_hs), bool) if coverage is None else coverage
    theta = torch.empty(n_ms, n_hs)
    nn.init.kaiming_normal_(theta, a=0, mode="fan_in")  # std sqrt(2/L)
    r0 = torch.softmax(theta.double().masked_fill(~torch.as_tensor(mask), float("-inf")), 1).numpy()
    psf = PSFLayer(s, init=k0, param=param, boundary=ctx.boundary)
    srf = SRFLayer(n_hs, n_ms, init=r0, coverage=coverage, param=param)
    note = {"mode": ctx.mode, "psf_init": "Kaiming-normal logits", "srf_init": "Kaiming-normal logits",
            "srf_coverage": "given" if coverage is not None else "full"}
    return psf, srf, note


@register
class CycFusion(NetMethod):
    """CycFusion (Shi et al., 2023): LrHSI <-> HrMSI domain translation with cycle consistency."""

    name = "cycfusion"
    paper = ("Shi, Zhang, Altmann, Chen, Unsupervised Hyperspectral and Multispectral Image Fusion Based on "
             "the Cycle Consistency, arXiv 2307.03413, 2023")
    summary = ("spatial (bicubic x2 + 3x3 conv blocks) and spectral (1x1 CNN) up-sampling nets tied by learned "
               "PSF/SRF with marginal-matching, cycle and identity L1 losses; PSF/SRF pre-trained on LrMSI matching")
    modes = ("oracle", "srf_support", "blind", "estimated")
    deviations = (
        "re-implementation from the paper (the official repository holds no code)",
        "one-cycle max lr 1e-3 (only in the paper's Fig. 3, not in its text); linear warm-up from 0 then cosine "
        "to 0 (the engine's schedule) instead of OneCycleLR's cosine warm-up from max/25",
        "mean-reduced L1 per loss term (reduction not stated)",
        "G_y for scale s uses log2(s) interpolation blocks with the first log2(s) Table II widths; "
        "a scale that is not a power of two is not applicable (no resize fallback)",
        "reconstructed eq. 9 (missing in the text): IN + ReLU after every hidden conv, sigmoid output",
        "oracle (CycFusion-noblind) freezes the true PSF/SRF; estimated starts the PSF/SRF logits from the "
        "estimate (no pre-training) and fine-tunes them",
        "bicubic x2 with align_corners=False; zero padding in the 3x3 convs; Kaiming-normal convs, zero biases",
    )
    preset_deviations = {
        "fast": (
            "schedules compressed: pre-training 1000 iterations (paper 10 000), training 660 = 220 "
            "warm-up + 440 cosine (paper 10 000 + 20 000), plateau stop on after 400",
        ),
        "small": (
            "narrow widths: G_y 16-16-32(-32-32), refine 32, G_z 16-32-32-32-32 (paper 32-64-128-128-128, 128)",
            "pre-training 1000 iterations at lr 1e-2 (paper 10 000 at 1e-3)",
            "training 600 iterations (200 warm-up) at one-cycle max lr 5e-2 (paper 30 000 at 1e-3) with the "
            "PSF/SRF at 0.02x (= 1e-3), plateau stop on",
        ),
    }
    presets = {
        "default": {
            **ENGINE_DEFAULTS,
            "spatial_widths": PAPER_SPATIAL_WIDTHS,
            "refine_width": PAPER_REFINE_WIDTH,
            "spectral_widths": PAPER_SPECTRAL_WIDTHS,
            "width_mult": 1,
            "lambda_mm": 1.0,
            "lambda_cyc": 1.0,
            "lambda_ide": 1.0,
            "psf_size": None,
            "degradation_param": "softmax",
            "degradation_init": "kaiming",
            "finetune_degradation": True,
            "stage1_iterations": 10000,
            "stage1_lr": 1e-3,
            "iterations": 30000,
            "lr": 1e-3,
            "schedule": "cosine",
            "warmup": 10000,
            "min_lr_factor": 0.0,
        },
        "paper": {},
        "fast": {
            "stage1_iterations": 1000,
            "iterations": 660,
            "warmup": 220,
            "early_stop": True,
            "plateau_window": 100,
            "plateau_tol": 1e-3,
            "plateau_patience": 3,
            "min_iterations": 400,
        },
        "small": {
            "spatial_widths": (16, 16, 32, 32, 32),
            "refine_width": 32,
            "spectral_widths": (16, 32, 32, 32, 32),
            "stage1_iterations": 1000,
            "stage1_lr": 1e-2,
            "iterations": 600,
            "warmup": 200,
            "lr": 5e-2,
            "lr_mult": {"psf": 0.02, "srf": 0.02},
            "early_stop": True,
            "plateau_window": 100,
            "plateau_tol": 1e-3,
            "plateau_patience": 3,
            "min_iterations": 400,
        },
    }

    def _degradation(self, ctx: Context, n_hs: int, n_ms: int):
        p = self.params
        param = p["degradation_param"]
        if p["degradation_init"] not in ("kaiming", "uniform"):
            raise MethodError(f"degradation_init must be 'kaiming' or 'uniform', got {p['degradation_init']!r}")
        if ctx.mode in ("blind", "srf_support") and p["degradation_init"] == "kaiming":
            return _kaiming_degradation(ctx, n_hs, n_ms, p["psf_size"], param)
        if ctx.mode == "oracle":  # frozen: the clamp form holds the truth exactly (softmax logits mix in 1e-3 uniform)
            param = "clamp"
        return degradation_layers(ctx, n_hs, n_ms, psf_size=p["psf_size"], psf_param=param, srf_param=param)

    def _widths(self, ws) -> tuple[int, ...]:
        m = float(self.params["width_mult"])
        return tuple(max(1, int(round(int(w) * m))) for w in ws)

    def _scaled(self, n: int, ctx: Context) -> int:
        """A preset iteration count scaled by ``ctx.iterations / iterations`` (keeps the paper's shape)."""
        if ctx.iterations is None:
            return int(n)
        return int(round(int(n) * int(ctx.iterations) / int(self.params["iterations"])))

    def _run(self, lr, msi, ctx: Context, device):
        p = self.params
        n_hs, n_ms = lr.shape[1], msi.shape[1]
        s = int(ctx.scale)
        n_interp_blocks(s)  # reject a non-power-of-two scale before any work
        psf, srf, note = self._degradation(ctx, n_hs, n_ms)
        model = CycFusionModel(n_hs, n_ms, s, psf, srf, self._widths(p["spatial_widths"]),
                               self._widths([p["refine_width"]])[0], self._widths(p["spectral_widths"])).to(device)
        info: dict[str, Any] = {"initial_psf": psf.initial_psf(), "initial_srf": srf.initial_matrix()}

        # Pre-training (eq. 18) of the PSF/SRF logits alone; skipped when they are frozen (oracle) or
        # start from the estimator's output (estimated: the estimate replaces the pre-training).
        if (psf.learn or srf.learn) and ctx.mode != "estimated":
            n1 = max(1, self._scaled(p["stage1_iterations"], ctx))
            cfg1 = TrainConfig(iterations=n1, optimizer=p["optimizer"], lr=p["stage1_lr"], betas=p["betas"],
                               eps=p["eps"], schedule="constant", divergence_factor=p["divergence_factor"])
            res1 = train(lambda it: {"lrmsi": model.pretrain_loss(lr, msi)},
                         {"psf": list(psf.parameters()), "srf": list(srf.parameters())}, cfg1,
                         project=model.project, progress=ctx.progress, desc=f"{self.name} pre-training (PSF/SRF)")
            info.update(res1.info("stage1_"))
            info.update(pretrained_psf=psf.psf().detach().cpu().double().numpy(),
                        pretrained_srf=srf.matrix().detach().cpu().double().numpy())
        else:
            info["stage1_iterations"] = 0
            info["stage1_skipped"] = "frozen truth" if ctx.mode == "oracle" else "started from the estimate"
        if not p["finetune_degradation"]:
            psf.weight.requires_grad_(False)
            srf.weight.requires_grad_(False)

        cfg = self.train_config(ctx)
        cfg.warmup = min(cfg.iterations, self._scaled(p["warmup"], ctx))
        lam = {"mm": float(p["lambda_mm"]), "cyc": float(p["lambda_cyc"]), "ide": float(p["lambda_ide"])}

        def objective(it):
            return {k: lam[k] * v for k, v in model.losses(lr, msi).items() if lam[k]}

        res = train(objective, model.groups(), cfg, project=model.project, progress=ctx.progress,
                    desc=f"{self.name} training")
        with torch.no_grad():
            hr = model(lr, msi)
        info.update(res.info())
        info.update(
            learned_psf=psf.psf().detach().cpu().double().numpy(),
            learned_srf=srf.matrix().detach().cpu().double().numpy(),
            knowledge=note,
            warmup=cfg.warmup,
        )
        return hr, info
