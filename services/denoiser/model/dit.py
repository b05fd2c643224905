"""Kino's video diffusion transformer, end to end in one file.

The network predicts the flow-matching velocity of a latent video (see `sampler.py` for the path it
integrates). Reading order: helpers, embedders, block, final layer, the model, positional embeddings,
presets.

* Input: the noisy latents `(B, C, F, H, W)` of the frame autoencoder, cut into 3D patches.
* Time: AdaLN-Zero modulation from the timestep plus the mean of the prompt's tokens.
* Text: cross-attention to the text encoder's token embeddings `(B, L, 384)` (all-MiniLM-L6-v2).
  A learned "null prompt" token stands for a dropped caption, which classifier-free guidance needs.
* Known frames (image-to-video, extending a video): their clean latents and a mask ride along as extra
  input channels, so the model sees them at every noise level.
* Reference appearance (cameo): the reference image's latents become extra cross-attention tokens.
* Subject path (trajectory, camera): a heat map per frame of where the subject should be (`paths.py`)
  rides along as one more input channel, zero when a clip has no path.

Remix (SDEdit) needs nothing here: the sampler starts from a noised source video.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoDiTConfig:
    latent_channels: int = 4
    num_frames: int = 16  # latent frames; the autoencoder is per frame, so these are video frames
    latent_size: int = 8  # latent height and width
    patch_size: tuple[int, int, int] = (2, 2, 2)  # (frames, height, width) of one token
    hidden_size: int = 192
    depth: int = 6
    num_heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 384  # width of the text encoder's token embeddings
    path_input: bool = False  # one input channel for a subject path heat map (configs before it lack it)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Tokens along (frames, height, width)."""
        pf, ph, pw = self.patch_size
        return self.num_frames // pf, self.latent_size // ph, self.latent_size // pw

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid)


# ---------------------------------------------------------------------------------------------
# Helpers and embedders
# ---------------------------------------------------------------------------------------------


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x (B, L, D), shift and scale (B, D): x * (1 + scale) + shift, in one pass over x."""
    return torch.addcmul(shift.unsqueeze(1), x, 1 + scale.unsqueeze(1))


def gated_residual(x: torch.Tensor, gate: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """x + gate * branch for x and branch (B, L, D), gate (B, D), in one pass."""
    return torch.addcmul(x, gate.unsqueeze(1), branch)


class TanhGELU(nn.Module):
    """GELU with the tanh approximation, as `nn.GELU(approximate="tanh")` computes it (to float
    rounding), in place on one buffer when no gradient is needed: on a 2-core CPU torch's own kernel
    for it took 0.30 ms on the MLP's (2, 225, 512) activations, this 0.17 ms."""

    C = math.sqrt(2 / math.pi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return F.gelu(x, approximate="tanh")
        y = x * x  # 0.5 * x * (1 + tanh(C * (x + 0.044715 * x^3)))
        return y.mul_(0.044715 * self.C).add_(self.C).mul_(x).tanh_().add_(1).mul_(x).mul_(0.5)


class TimestepEmbedder(nn.Module):
    """Flow time t in [0, 1] -> (B, D), through sinusoidal frequencies and an MLP."""

    def __init__(self, hidden_size: int, frequency_size: int = 256):
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.frequency_size // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = (t.float() * 1000)[:, None] * freqs[None]  # (B, half)
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))  # (B, D)


class Attention(nn.Module):
    """Multi-head attention; self-attention when `context` is None."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(hidden_size, hidden_size)
        self.kv = nn.Linear(hidden_size, 2 * hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, L, D); context (B, S, D); context_mask bool (B, S), True where a token is real."""
        B, L, D = x.shape
        context = x if context is None else context
        S = context.shape[1]
        hs = D // self.num_heads
        q = self.q(x).view(B, L, self.num_heads, hs).transpose(1, 2)  # (B, nh, L, hs)
        k, v = self.kv(context).view(B, S, 2, self.num_heads, hs).permute(2, 0, 3, 1, 4)  # 2 x (B, nh, S, hs)
        mask = None if context_mask is None else context_mask[:, None, None, :]  # (B, 1, 1, S)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, L, hs)
        return self.proj(out.transpose(1, 2).reshape(B, L, D))  # (B, L, D)


# ---------------------------------------------------------------------------------------------
# Block and final layer
# ---------------------------------------------------------------------------------------------


class DiTBlock(nn.Module):
    """Self-attention and MLP under AdaLN-Zero modulation, with cross-attention to the context between."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, eps=1e-6)
        self.cross_attn = Attention(hidden_size, num_heads)
        self.norm3 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        hidden = int(hidden_size * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden_size, hidden), TanhGELU(), nn.Linear(hidden, hidden_size))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor
    ) -> torch.Tensor:
        """x (B, L, D), c (B, D), context (B, S, D), context_mask (B, S)."""
        shift_sa, scale_sa, gate_sa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = gated_residual(x, gate_sa, self.attn(modulate(self.norm1(x), shift_sa, scale_sa)))  # (B, L, D)
        x = x + self.cross_attn(self.norm2(x), context, context_mask)  # (B, L, D)
        x = gated_residual(x, gate_mlp, self.mlp(modulate(self.norm3(x), shift_mlp, scale_mlp)))  # (B, L, D)
        return x


class FinalLayer(nn.Module):
    def __init__(self, hidden_size: int, patch_volume: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_volume * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (B, L, pf*ph*pw*C)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class VideoDiT(nn.Module):
    def __init__(self, config: VideoDiTConfig):
        super().__init__()
        self.config = config
        C, D = config.latent_channels, config.hidden_size
        pf, ph, pw = config.patch_size
        # Input channels: noisy latents, known-frame latents (zero where unknown), known-frame mask, and
        # the subject path's heat map.
        in_channels = 2 * C + 1 + int(config.path_input)
        self.x_embedder = nn.Conv3d(in_channels, D, kernel_size=config.patch_size, stride=config.patch_size)
        self.t_embedder = TimestepEmbedder(D)
        self.text_norm = nn.LayerNorm(config.text_dim, elementwise_affine=False, eps=1e-6)
        self.text_proj = nn.Linear(config.text_dim, D)
        self.text_pool = nn.Sequential(nn.Linear(config.text_dim, D), nn.SiLU(), nn.Linear(D, D))
        self.null_text = nn.Parameter(torch.zeros(1, config.text_dim))  # the "no prompt" token
        self.ref_embedder = nn.Conv2d(C, D, kernel_size=(ph, pw), stride=(ph, pw))
        self.ref_type = nn.Parameter(torch.zeros(1, 1, D))  # tells reference tokens from text tokens
        self.blocks = nn.ModuleList(
            [DiTBlock(D, config.num_heads, config.mlp_ratio) for _ in range(config.depth)]
        )
        self.final_layer = FinalLayer(D, pf * ph * pw, C)
        self.register_buffer(
            "pos_embed", torch.from_numpy(sincos_3d(D, config.grid)).float()[None], persistent=False
        )
        # The shifted token grids: in time (`forward(shift_tokens=True)`) one more token, each half a
        # token earlier than the usual grid's; in space (`shift_space=True`) one more row and column of
        # tokens, half a token up and left; or both.
        gf, gh, gw = config.grid
        for name, (df, ds) in {
            "shifted_pos_embed": (1, 0),
            "space_shifted_pos_embed": (0, 1),
            "both_shifted_pos_embed": (1, 1),
        }.items():
            table = sincos_3d(D, (gf + df, gh + ds, gw + ds), time_offset=-0.5 * df, space_offset=-0.5 * ds)
            self.register_buffer(name, torch.from_numpy(table).float()[None], persistent=False)
        grid_2d = (1, *config.grid[1:])
        self.register_buffer(
            "ref_pos_embed", torch.from_numpy(sincos_3d(D, grid_2d)).float()[None], persistent=False
        )
        # A reference image is cut on the frames' grid, shifted in space with them.
        shifted_2d = sincos_3d(D, (1, gh + 1, gw + 1), space_offset=-0.5)
        self.register_buffer(
            "space_shifted_ref_pos_embed", torch.from_numpy(shifted_2d).float()[None], persistent=False
        )
        self.initialize_weights()

    def initialize_weights(self):
        # Xavier for every linear layer, as in ViT/DiT.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        # Patch embedders are linear layers over flattened patches: initialise them as such.
        for embedder in (self.x_embedder, self.ref_embedder):
            nn.init.xavier_uniform_(embedder.weight.view(embedder.weight.shape[0], -1))
            nn.init.zeros_(embedder.bias)
        # Small timestep MLP weights, as DiT: the sinusoid features are already unit scale.
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        # The null prompt and the reference type start as ordinary unit-scale tokens.
        nn.init.normal_(self.null_text, std=1.0)
        nn.init.normal_(self.ref_type, std=0.02)
        # AdaLN-Zero: every block starts as the identity, so depth does not destabilise early training.
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        # Zero output: the first prediction is zero velocity rather than noise.
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def null_text_tokens(self, batch: int, length: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """The unconditional prompt: tokens (B, L, text_dim) and mask (B, L), the null token first."""
        tokens = torch.zeros(batch, length, self.config.text_dim, device=self.null_text.device)
        tokens[:, 0] = self.null_text[0]
        mask = torch.zeros(batch, length, dtype=torch.bool, device=tokens.device)
        mask[:, 0] = True
        return tokens, mask

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        known_latents: torch.Tensor | None = None,
        known_mask: torch.Tensor | None = None,
        reference: torch.Tensor | None = None,
        reference_mask: torch.Tensor | None = None,
        path_map: torch.Tensor | None = None,
        shift_tokens: bool = False,
        shift_space: bool = False,
    ) -> torch.Tensor:
        """Predicts the velocity (B, C, F, H, W), float32.

        x: noisy latents (B, C, F, H, W). t: flow time (B,) in [0, 1], 1 is pure noise.
        text_tokens: (B, L, text_dim), padded; text_mask: bool (B, L), True for real tokens.
        known_latents: clean latents (B, C, F, H, W) of known frames; known_mask: (B, 1, F, 1, 1), 1 where known.
        reference: latents (B, C, H, W) of an appearance image; reference_mask: bool (B,), rows that have one.
        path_map: (B, 1, F, H, W) heat map of the subject's path (`paths.path_heatmap`), zero for rows
        without one.
        shift_tokens: cut the frames into tokens half a token later: every input is padded by half a
        token's frames at each end (copies of the first and last frame), so each token pairs frames
        that straddle two of the usual tokens, and the padding is cut from the output. A token's frames
        come out moving together, so a model sampled on one grid moves its subject once per token;
        alternating the grids between sampling steps lets it move every frame (docs/model/NOTES.md).
        shift_space: cut the frames into tokens on a grid moved half a token in height and width: every
        input is padded by half a token's rows and columns on each side (copies of the edge), cut from
        the output again, so a subject that sits across a token boundary on the usual grid sits inside
        a token on this one.
        """
        B, C, Fr, H, W = x.shape
        pf, ph, pw = self.config.patch_size
        gf, gh, gw = Fr // pf, H // ph, W // pw
        if known_latents is None:
            known_latents = torch.zeros_like(x)
            known_mask = torch.zeros(B, 1, Fr, 1, 1, device=x.device)
        mask = known_mask.expand(B, 1, Fr, H, W)  # (B, 1, F, H, W)
        channels = [x, known_latents * mask, mask]
        if self.config.path_input:
            channels.append(torch.zeros(B, 1, Fr, H, W, device=x.device) if path_map is None else path_map)
        elif path_map is not None:
            raise ValueError("this model has no path input")
        inputs = torch.cat(channels, dim=1)  # (B, 2C+1[+1], F, H, W)
        pad, pad_h, pad_w = 0, 0, 0
        if shift_tokens:
            if pf % 2:
                raise ValueError(f"tokens of {pf} frames have no half-token shift")
            pad = pf // 2
            first, last = inputs[:, :, :1], inputs[:, :, -1:]
            inputs = torch.cat(
                [first.expand(-1, -1, pad, -1, -1), inputs, last.expand(-1, -1, pad, -1, -1)], 2
            )
            gf += 1  # (B, Cin, F + pf, H, W)
        if shift_space:
            if ph % 2 or pw % 2:
                raise ValueError(f"tokens of {ph}x{pw} latent pixels have no half-token shift")
            pad_h, pad_w = ph // 2, pw // 2
            inputs = F.pad(inputs, (pad_w, pad_w, pad_h, pad_h, 0, 0), mode="replicate")
            gh, gw = gh + 1, gw + 1  # (B, Cin, F', H + ph, W + pw)
        pos_embed = {
            (False, False): self.pos_embed,
            (True, False): self.shifted_pos_embed,
            (False, True): self.space_shifted_pos_embed,
            (True, True): self.both_shifted_pos_embed,
        }[(shift_tokens, shift_space)]
        h = self.x_embedder(inputs).flatten(2).transpose(1, 2) + pos_embed  # (B, L, D)

        text = self.text_norm(text_tokens)  # (B, S, text_dim)
        weights = text_mask.unsqueeze(-1).float()  # (B, S, 1)
        pooled = (text * weights).sum(1) / weights.sum(1).clamp(min=1)  # (B, text_dim)
        c = self.t_embedder(t) + self.text_pool(pooled)  # (B, D)
        context, context_mask = self.text_proj(text), text_mask  # (B, S, D), (B, S)
        if reference is not None:
            ref_pos_embed = self.ref_pos_embed
            if shift_space:  # the same grid as the frames' tokens, so each lines up with its place
                reference = F.pad(reference, (pad_w, pad_w, pad_h, pad_h), mode="replicate")
                ref_pos_embed = self.space_shifted_ref_pos_embed
            ref = self.ref_embedder(reference).flatten(2).transpose(1, 2)  # (B, gh*gw, D)
            ref = ref + ref_pos_embed + self.ref_type  # (B, gh*gw, D)
            ref_mask = reference_mask[:, None].expand(B, ref.shape[1])  # (B, gh*gw)
            context = torch.cat([context, ref], dim=1)  # (B, S + gh*gw, D)
            context_mask = torch.cat([context_mask, ref_mask], dim=1)  # (B, S + gh*gw)

        for block in self.blocks:
            h = block(h, c, context, context_mask)  # (B, L, D)
        out = self.final_layer(h, c)  # (B, L, pf*ph*pw*C)
        out = out.view(B, gf, gh, gw, pf, ph, pw, C)  # (B, gf, gh, gw, pf, ph, pw, C)
        out = out.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C, gf, pf, gh, ph, gw, pw)
        out = out.reshape(B, C, gf * pf, gh * ph, gw * pw)  # (B, C, F [+ pf], H [+ ph], W [+ pw])
        return out[:, :, pad : pad + Fr, pad_h : pad_h + H, pad_w : pad_w + W]  # (B, C, F, H, W)

    def forward_with_cfg(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        guidance_scale: float,
        shift_tokens: bool = False,
        shift_space: bool = False,
        guide_path: bool = False,
        **conditioning: torch.Tensor | None,
    ) -> torch.Tensor:
        """Classifier-free guidance in one batched call: the prompt's and the null prompt's velocities,
        extrapolated by guidance_scale. Known frames are kept in both halves (they fix where things
        are); the reference appearance is in the conditional half only, so guidance pushes towards the
        prompt and the reference's look together (a cameo's look is part of what is asked). With
        `guide_path` the subject path is in the conditional half only too, so guidance also pushes the
        subject onto its path and keeps it drawn there (`PipelineConfig.path_guidance`); otherwise it is
        in both halves."""
        B, L = text_mask.shape
        null_tokens, null_mask = self.null_text_tokens(B, L)
        doubled = {k: None if v is None else torch.cat([v, v]) for k, v in conditioning.items()}
        if doubled.get("reference_mask") is not None:
            doubled["reference_mask"] = torch.cat(
                [conditioning["reference_mask"], torch.zeros_like(conditioning["reference_mask"])]
            )
        if guide_path and doubled.get("path_map") is not None:
            doubled["path_map"] = torch.cat(
                [conditioning["path_map"], torch.zeros_like(conditioning["path_map"])]
            )
        v = self.forward(
            torch.cat([x, x]),  # (2B, C, F, H, W)
            torch.cat([t, t]),
            torch.cat([text_tokens, null_tokens]),  # (2B, L, text_dim)
            torch.cat([text_mask, null_mask]),
            shift_tokens=shift_tokens,
            shift_space=shift_space,
            **doubled,
        )
        v_cond, v_uncond = v.chunk(2)  # 2 x (B, C, F, H, W)
        return v_uncond + guidance_scale * (v_cond - v_uncond)


def grow_depth(model: VideoDiT, depth: int) -> VideoDiT:
    """A deeper copy of `model` that computes the same function: a new block after each of the old ones
    in turn (until `depth` blocks), each starting as the identity, so a trained model can grow and train
    on from where it was instead of from scratch.

    A new block is the identity when its AdaLN gates are zero (the self-attention and MLP branches),
    as every fresh block's are (AdaLN-Zero, `initialize_weights`), and its cross-attention's output
    projection is zero (that branch has no gate)."""
    config = model.config
    if depth < config.depth:
        raise ValueError(f"cannot grow a model of depth {config.depth} to depth {depth}")
    grown = VideoDiT(dataclasses.replace(config, depth=depth)).to(next(model.parameters()).device)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("blocks.")}
    grown.load_state_dict(state, strict=False)
    old_blocks = list(model.blocks)
    new_count = depth - config.depth
    # Slots: old block i sits at its place in an interleaving where new blocks follow the first
    # `new_count` old blocks one each (and any beyond that go at the end).
    order: list[DiTBlock | None] = []
    for i, block in enumerate(old_blocks):
        order.append(block)
        if i < new_count:
            order.append(None)
    order.extend([None] * (depth - len(order)))
    for slot, source in zip(grown.blocks, order, strict=True):
        if source is not None:
            slot.load_state_dict(source.state_dict())
        else:
            nn.init.zeros_(slot.cross_attn.proj.weight)
            nn.init.zeros_(slot.cross_attn.proj.bias)
    return grown


# ---------------------------------------------------------------------------------------------
# Positional embeddings
# ---------------------------------------------------------------------------------------------


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """(N,) positions -> (N, dim) sines and cosines."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2))
    out = np.outer(positions.reshape(-1), omega)  # (N, dim/2)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_3d(
    dim: int, grid: tuple[int, int, int], time_offset: float = 0.0, space_offset: float = 0.0
) -> np.ndarray:
    """Fixed 3D embedding (F*H*W, dim): a quarter of the channels for time, three eighths each for
    height and width, in the token order of a flattened (F, H, W) grid. Token k sits at time
    k + time_offset (in tokens): -0.5 for a grid shifted half a token earlier; rows and columns
    likewise at k + space_offset."""
    gf, gh, gw = grid
    dim_t = dim // 4 // 2 * 2
    dim_h = (dim - dim_t) // 2 // 2 * 2
    dim_w = dim - dim_t - dim_h
    times = np.arange(gf) + time_offset
    rows, columns = np.arange(gh) + space_offset, np.arange(gw) + space_offset
    f, h, w = np.meshgrid(times, rows, columns, indexing="ij")  # each (F, H, W)
    return np.concatenate([sincos_1d(dim_t, f), sincos_1d(dim_h, h), sincos_1d(dim_w, w)], axis=1)


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------

VIDEO_DIT_PRESETS = {
    # For tests: the real code path in milliseconds.
    "tiny": VideoDiTConfig(hidden_size=32, depth=2, num_heads=2, path_input=True),
    # The model Kino ships, sized to train from scratch on a 2-core CPU in about an hour: 16x16 latents of
    # the 4x autoencoder in 2x4x4 patches, 128 tokens per clip.
    "shapes-s": VideoDiTConfig(
        latent_size=16, patch_size=(2, 4, 4), hidden_size=128, depth=6, num_heads=4, path_input=True
    ),
}


def build_video_dit(config: VideoDiTConfig) -> VideoDiT:
    model = VideoDiT(config)
    logger.info("VideoDiT: %.2fM parameters", sum(p.numel() for p in model.parameters()) / 1e6)
    return model
