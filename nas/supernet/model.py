"""The weight-sharing supernet: a config from the space, then stem, stages and head.

``Supernet(config).forward(x, arch)`` runs any subnet of the space: elastic depth keeps the
first ``d`` layers of a stage, every block slices its largest weights to the arch's sizes.
``Supernet.extract(arch)`` builds a standalone :class:`Subnet` holding only the chosen ops
with copied weights; it runs the very same forward code at exact sizes, so its output
equals the supernet's for that arch.

Tokens flow as (batch, length, channels); ``grid`` is the spatial shape, (H, W) for images
or (L,) for sequences, always plain Python ints so that exported graphs have fixed shapes.

A text space's supernet is a causal language model: byte tokens (batch, length) are embedded at
the stage's width (:class:`TokenStem`), its causal layers run at full length, and the output head
is the same embedding (tied weights, :class:`LmHead`), giving logits (batch, length, vocabulary).
Attention has no position encoding: the causal mask, the convolutions and the SSM scan tell
positions apart (Kazemnejad et al., 2023, find no positional encoding as good as any for
decoders), and a decode step needs no position input.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks import Aux, build_block
from nas.blocks._slice import ElasticConv, ElasticLayerNorm, ElasticLinear, assemble, lead
from nas.errors import NasError
from nas.space import BlockSettings, Ffn, Layer, Mixer, NetArch, NetSpace, Op, stage_grids

# ----------------------------------------------------------------------------- config


def _largest_per_kind(options: tuple[Op, ...], kinds: tuple[str, ...]) -> tuple[Op, ...]:
    """Per kind, one option holding the largest value of every field (what the supernet's module is sized for)."""
    out = []
    for kind in kinds:
        mine = [op for op in options if op.kind == kind]
        out.append(type(mine[0]).make(kind, tuple(max(values) for values in zip(*(op.values for op in mine), strict=True))))
    return tuple(out)


@dataclass(frozen=True)
class LayerConfig:
    """The ops one layer holds: per kind, the largest option (a supernet) or the one chosen (a subnet)."""

    mixers: tuple[Mixer, ...]
    ffns: tuple[Ffn, ...]


@dataclass(frozen=True)
class StageConfig:
    width: int  # the largest width
    downsample: bool
    layers: tuple[LayerConfig, ...]


@dataclass(frozen=True)
class SupernetConfig:
    task_kind: str  # "image" or "sequence"
    in_channels: int
    num_classes: int
    settings: BlockSettings
    stages: tuple[StageConfig, ...]

    @property
    def spatial_dims(self) -> int:
        return 2 if self.task_kind == "image" else 1

    @property
    def text(self) -> bool:
        return self.task_kind == "text"

    @classmethod
    def from_space(cls, space: NetSpace, num_classes: int | None = None, in_channels: int | None = None) -> SupernetConfig:
        stages = []
        for spec in space.stages:
            layer = LayerConfig(_largest_per_kind(spec.mixers, spec.mixer_kinds()),
                                _largest_per_kind(spec.ffns, spec.ffn_kinds()))
            stages.append(StageConfig(spec.max_width, spec.downsample, (layer,) * spec.max_depth))
        return cls(
            task_kind=space.task.kind,
            in_channels=in_channels or space.task.input_shape[0],
            num_classes=num_classes or space.task.num_classes,
            settings=space.settings,
            stages=tuple(stages),
        )

    def for_arch(self, arch: NetArch) -> SupernetConfig:
        """The config of the standalone subnet for ``arch``: exact widths, depths and ops."""
        stages = tuple(
            StageConfig(
                s.width,
                sc.downsample,
                tuple(LayerConfig((la.mixer,), (la.ffn,)) for la in s.layers),
            )
            for s, sc in zip(arch.stages, self.stages, strict=True)
        )
        return replace(self, stages=stages)


# ----------------------------------------------------------------------------- modules


class Stem(nn.Module):
    """conv3 (fixed channels) -> GELU -> conv3 to the first stage's width; returns tokens."""

    def __init__(self, in_channels: int, channels: int, max_width: int, strides: tuple[int, ...], spatial_dims: int) -> None:
        super().__init__()
        self.in_channels, self.channels = in_channels, channels
        self.conv1 = ElasticConv(in_channels, channels, strides[0], spatial_dims)
        self.conv2 = ElasticConv(channels, max_width, strides[1], spatial_dims)

    def forward(self, x: torch.Tensor, width: int) -> torch.Tensor:
        h = F.gelu(self.conv1(x, self.in_channels, self.channels))
        h = self.conv2(h, self.channels, width)
        return h.flatten(2).transpose(1, 2)

    def extract(self, width: int) -> Stem:
        return assemble(Stem, in_channels=self.in_channels, channels=self.channels,
                        conv1=self.conv1.extract(self.in_channels, self.channels),
                        conv2=self.conv2.extract(self.channels, width))


class TokenStem(nn.Module):
    """A byte-token embedding of at most ``max_width`` features; a narrower subnet takes the leading
    features. It is the output head's weight too (:class:`LmHead`)."""

    def __init__(self, vocab: int, max_width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab, max_width))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor, width: int) -> torch.Tensor:
        return F.embedding(x.long(), lead(self.weight, self.weight.shape[0], width))

    def logits(self, h: torch.Tensor, width: int) -> torch.Tensor:
        return F.linear(h, lead(self.weight, self.weight.shape[0], width))

    def extract(self, width: int) -> TokenStem:
        new = TokenStem(self.weight.shape[0], width)
        with torch.no_grad():
            new.weight.copy_(self.weight[:, :width])
        return new


class LmHead(nn.Module):
    """LayerNorm, then logits at every position from the token embedding (tied weights)."""

    def __init__(self, max_width: int, stem: TokenStem) -> None:
        super().__init__()
        self.norm = ElasticLayerNorm(max_width)
        self.stem = [stem]  # a plain list: the embedding is the stem's parameter, not a second copy

    def forward(self, x: torch.Tensor, width: int) -> torch.Tensor:
        return self.stem[0].logits(self.norm(x, width), width)

    def extract(self, width: int, stem: TokenStem | None = None) -> LmHead:
        """The head at ``width``, tied to ``stem`` (the extracted subnet's own embedding; by default
        a slice of this head's, for a head measured on its own)."""
        return assemble(LmHead, norm=self.norm.extract(width), stem=[stem or self.stem[0].extract(width)])


class Downsample(nn.Module):
    """Between stages: LayerNorm, then a stride-2 conv3 from the previous width to this one."""

    def __init__(self, max_in: int, max_out: int, spatial_dims: int) -> None:
        super().__init__()
        self.norm = ElasticLayerNorm(max_in)
        self.conv = ElasticConv(max_in, max_out, 2, spatial_dims)

    def forward(self, x: torch.Tensor, grid: tuple[int, ...], in_width: int, out_width: int) -> torch.Tensor:
        h = self.norm(x, in_width).transpose(1, 2).reshape(-1, in_width, *grid)
        return self.conv(h, in_width, out_width).flatten(2).transpose(1, 2)

    def extract(self, in_width: int, out_width: int) -> Downsample:
        return assemble(Downsample, norm=self.norm.extract(in_width), conv=self.conv.extract(in_width, out_width))


class SuperLayer(nn.Module):
    """One layer: ``x + mixer(x)`` then ``x + ffn(x)``, with one module per kind it can choose."""

    def __init__(self, config: LayerConfig, width: int, settings: BlockSettings, spatial_dims: int) -> None:
        super().__init__()
        self.mixers = nn.ModuleDict({m.kind: build_block(m, width, settings, spatial_dims) for m in config.mixers})
        self.ffns = nn.ModuleDict({f.kind: build_block(f, width, settings, spatial_dims) for f in config.ffns})

    def forward(self, x: torch.Tensor, grid: tuple[int, ...], width: int, layer: Layer, aux: Aux | None) -> torch.Tensor:
        x = x + self.mixers[layer.mixer.kind](x, grid, width, layer.mixer)
        return x + self.ffns[layer.ffn.kind](x, grid, width, layer.ffn, aux)

    def cached(self, x: torch.Tensor, width: int, layer: Layer,
               state: tuple[torch.Tensor, ...] | None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """A causal layer on new tokens after a decode ``state`` (None: from the start), and its state after them."""
        y, state = self.mixers[layer.mixer.kind].forward_cached(x, width, layer.mixer, state)
        x = x + y
        return x + self.ffns[layer.ffn.kind](x, (x.shape[1],), width, layer.ffn, None), state

    def extract(self, width: int, layer: Layer) -> SuperLayer:
        return assemble(SuperLayer,
                        mixers=nn.ModuleDict({layer.mixer.kind: self.mixers[layer.mixer.kind].extract(width, layer.mixer)}),
                        ffns=nn.ModuleDict({layer.ffn.kind: self.ffns[layer.ffn.kind].extract(width, layer.ffn)}))


class Head(nn.Module):
    """LayerNorm, mean over tokens, linear classifier (elastic input width)."""

    def __init__(self, max_width: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.norm = ElasticLayerNorm(max_width)
        self.fc = ElasticLinear(max_width, num_classes)

    def forward(self, x: torch.Tensor, width: int) -> torch.Tensor:
        return self.fc(self.norm(x, width).mean(dim=1), width, self.num_classes)

    def extract(self, width: int) -> Head:
        return assemble(Head, num_classes=self.num_classes, norm=self.norm.extract(width),
                        fc=self.fc.extract(width, self.num_classes))


class Supernet(nn.Module):
    """All subnets of a space in one set of weights; ``forward(x, arch)`` runs one of them."""

    def __init__(self, config: SupernetConfig) -> None:
        super().__init__()
        self.config = config
        s, dims = config.settings, config.spatial_dims
        if config.text:
            self.stem = TokenStem(config.num_classes, config.stages[0].width)
        else:
            self.stem = Stem(config.in_channels, s.stem_channels, config.stages[0].width, s.stem_strides, dims)
        self.downsamples = nn.ModuleList(
            Downsample(prev.width, sc.width, dims) if sc.downsample else nn.Identity()
            for prev, sc in zip(config.stages, config.stages[1:], strict=False)
        )
        self.stages = nn.ModuleList(
            nn.ModuleList(SuperLayer(lc, sc.width, s, dims) for lc in sc.layers) for sc in config.stages
        )
        self.head = LmHead(config.stages[-1].width, self.stem) if config.text \
            else Head(config.stages[-1].width, config.num_classes)

    def forward(
        self,
        x: torch.Tensor,
        arch: NetArch,
        grid: tuple[int, ...] | None = None,
        aux: Aux | None = None,
    ) -> torch.Tensor:
        """Logits of ``arch`` on ``x`` (B, C, H, W) or (B, C, L); a text space's next-token
        logits (B, L, V) at every position of tokens ``x`` (B, L).

        ``grid`` is the input's spatial shape (taken from ``x`` when not given; exported
        subnets pass it so the graph has fixed shapes). ``aux`` receives the ffns' auxiliary
        losses and, when asked, MoE routing margins (:class:`nas.blocks.Aux`).
        """
        if grid is None:
            grid = tuple(int(g) for g in x.shape[1 if self.config.text else 2 :])
        grids = stage_grids(grid, self.config.settings.stem_strides, tuple(s.downsample for s in self.config.stages))
        h = self.stem(x, arch.stages[0].width)
        for i, stage in enumerate(arch.stages):
            if i > 0 and self.config.stages[i].downsample:
                h = self.downsamples[i - 1](h, grids[i - 1], arch.stages[i - 1].width, stage.width)
            elif i > 0 and stage.width != arch.stages[i - 1].width:
                raise NasError(f"stage {i} changes width without downsampling")
            for layer_module, layer in zip(self.stages[i], stage.layers, strict=False):
                h = layer_module(h, grids[i], stage.width, layer, aux)
        return self.head(h, arch.stages[-1].width)

    def decode(self, x: torch.Tensor, arch: NetArch, states: list[tuple[torch.Tensor, ...]] | None = None,
               ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
        """A text space's language model, incrementally: logits (B, T, V) of tokens ``x`` (B, T)
        that follow what ``states`` (one tuple per layer, from an earlier call) has seen, and the
        states after them. ``states`` None: a prefill of the prompt ``x``; else ``x`` is one token.
        The same logits as :meth:`forward` on the whole sequence (a test holds them to it)."""
        if not self.config.text:
            raise NasError("decode() runs a text space's language model; this supernet classifies")
        stage = arch.stages[0]
        h = self.stem(x, stage.width)
        out = []
        for j, (module, layer) in enumerate(zip(self.stages[0], stage.layers, strict=False)):
            h, state = module.cached(h, stage.width, layer, None if states is None else states[j])
            out.append(state)
        return self.head(h, stage.width), out

    def extract(self, arch: NetArch, input_shape: tuple[int, ...]) -> Subnet:
        """A standalone module for ``arch`` with copied weights (no reference to this supernet), on
        the same device as this supernet's weights."""
        with torch.device(next(self.parameters()).device):
            return self._extract(arch, input_shape)

    def _extract(self, arch: NetArch, input_shape: tuple[int, ...]) -> Subnet:
        stem = self.stem.extract(arch.stages[0].width)
        width = arch.stages[-1].width
        net = assemble(
            Supernet, config=self.config.for_arch(arch), stem=stem,
            downsamples=nn.ModuleList(
                ds.extract(arch.stages[i].width, arch.stages[i + 1].width) if isinstance(ds, Downsample) else nn.Identity()
                for i, ds in enumerate(self.downsamples)),
            stages=nn.ModuleList(
                nn.ModuleList(module.extract(stage.width, layer)
                              for module, layer in zip(self.stages[i], stage.layers, strict=False))
                for i, stage in enumerate(arch.stages)),
            head=self.head.extract(width, stem) if self.config.text else self.head.extract(width))
        return Subnet(net, arch, input_shape)


class Subnet(nn.Module):
    """One extracted architecture with a fixed input shape: ``forward(x)`` only."""

    def __init__(self, net: Supernet, arch: NetArch, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.net = net
        self.arch = arch
        self.input_shape = tuple(input_shape)

    def forward(self, x: torch.Tensor, aux: Aux | None = None) -> torch.Tensor:
        if self.net.config.text:  # any length up to the context (generation grows it token by token)
            return self.net(x, self.arch, aux=aux)
        return self.net(x, self.arch, grid=self.input_shape[1:], aux=aux)

    def decode(self, x: torch.Tensor, states: list[tuple[torch.Tensor, ...]] | None = None,
               ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
        """A language model's prefill (``states`` None) or decode step: see :meth:`Supernet.decode`."""
        return self.net.decode(x, self.arch, states)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
