#!/usr/bin/env python3
"""Ratios of glimpse to transformers from the JSON that `glimpse bench --json`
and `bench/reference.py` print, as a Markdown table.

    python bench/compare.py OUT_DIR CONFIG...   (reads OUT_DIR/CONFIG.{glimpse,transformers}.json
                                                and, if present, the .peak files in MiB)
"""

import json
import sys
from pathlib import Path


def load(out: Path, config: str, impl: str) -> dict:
    report = json.loads((out / f"{config}.{impl}.json").read_text())
    peak = out / f"{config}.{impl}.peak"
    if peak.exists() and peak.read_text().strip() not in ("", "0"):
        report["device_peak_mib"] = int(peak.read_text())
    return report


def main():
    out = Path(sys.argv[1])
    print("| model | metric | transformers | glimpse | ratio (glimpse/transformers) |")
    print("|---|---|---|---|---|")
    for config in sys.argv[2:]:
        t, g = load(out, config, "transformers"), load(out, config, "glimpse")
        rows = [("time to first token (s)", "ttft_s"), ("vision (s)", "vision_s"), ("prefill (s)", "prefill_s"),
                ("decode (tokens/s)", "decode_tok_s"), ("device peak (MiB)", "device_peak_mib")]
        # `--follow-up` runs: the second question and its regeneration.
        for turn in ("follow_up", "regenerate"):
            for key, what in (("ttft_s", "time to first token (s)"), ("prefill_s", "prefill (s)")):
                if turn in t and turn in g:
                    t[f"{turn}.{key}"], g[f"{turn}.{key}"] = t[turn][key], g[turn][key]
                    rows.append((f"{turn.replace('_', '-')}: {what}", f"{turn}.{key}"))
        for name, key in rows:
            if key in t and key in g and t[key]:
                print(f"| {config} | {name} | {t[key]:.4g} | {g[key]:.4g} | {g[key] / t[key]:.2f} |")
        print(f"| {config} | image tokens / prompt tokens | {t['image_tokens']} / {t['prompt_tokens']} "
              f"| {g['image_tokens']} / {g['prompt_tokens']} | |")


if __name__ == "__main__":
    main()
