"""The checks that need a GPU machine, in one run (see bench/README.md).

1. Parity: every reference conversation of tests/fixtures on the chosen device
   and dtype; top-1 agreement of the greedy tokens with the recorded f32 CPU
   tokens (transformers' = glimpse's on the CPU).
2. A real-size random-weight model (Qwen2-VL-2B sizes, made here with
   transformers from tests/fixtures/configs), asked about the largest image
   glimpse allows: the memory estimate next to the measured peak.
3. While that runs: glimpse's sampler (`glimpse devices --json`) next to
   nvidia-smi.
4. The KV cache pushed past its threshold (`--kv-threshold 1`): it must switch
   to INT8 and keep answering.

Writes a JSON summary to OUT/summary.json and prints a readable report.
Needs only the standard library, plus torch and transformers for step 2.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def log(*parts):
    print(*parts, flush=True)


def run_glimpse(binary, args, timeout=600):
    proc = subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)
    return proc


# 1. Parity ------------------------------------------------------------------


def parity(binary, device, dtype, limit):
    cases = sorted((FIXTURES / "reference").glob("*.json"))[: limit or None]
    results = []
    for path in cases:
        ref = json.loads(path.read_text())
        want = ref["greedy"]["tokens"]
        proc = run_glimpse(
            binary,
            [
                "ask", "--json", "--device", device, "--dtype", dtype,
                "--temperature", "0", "--repetition-penalty", "1.0", "--max-tokens", "24",
                "--long-edge-cap", "off", "--alpha", "drop", "--kv-cache", "f16",
                "--model", str(FIXTURES / ref["model"]),
                "--conversation", str(FIXTURES / ref["conversation"]),
            ],
        )
        if proc.returncode != 0:
            results.append({"case": path.stem, "error": proc.stderr.strip()[-500:]})
            log(f"  {path.stem:32} ERROR {proc.stderr.strip()[-200:]}")
            continue
        got = json.loads(proc.stdout)["tokens"]
        prefix = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        same = sum(a == b for a, b in zip(got, want))
        results.append({"case": path.stem, "tokens": len(want), "prefix_agree": prefix,
                        "positions_agree": same, "exact": got == want})
        log(f"  {path.stem:32} first {prefix:2}/{len(want)} tokens agree"
            f"{' (exact)' if got == want else ''}")
    ok = [r for r in results if "error" not in r]
    total = sum(r["tokens"] for r in ok)
    agree = sum(r["prefix_agree"] for r in ok)
    summary = {
        "device": device, "dtype": dtype, "cases": len(results), "errors": len(results) - len(ok),
        "exact_cases": sum(r["exact"] for r in ok),
        "top1_agreement_until_first_divergence": agree / total if total else None,
        "cases_detail": results,
    }
    log(f"  => {summary['exact_cases']}/{len(results)} cases exact; "
        f"{agree}/{total} tokens agree before the first divergence")
    return summary


# 2. A real-size random model -------------------------------------------------


def make_model(out_dir, size, python_device):
    """A random-weight Qwen2-VL directory. `real`: Qwen2-VL-2B sizes; `tiny`:
    the test fixture's sizes. The fixture tokenizer and chat template are
    used, so the special-token ids follow them (memory and speed do not depend
    on the tokenizer)."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    tiny = FIXTURES / "models" / "qwen2_vl"
    if size == "real":
        cfg = json.loads((FIXTURES / "configs" / "qwen2_vl_2b_instruct.json").read_text())
    else:
        cfg = json.loads((tiny / "config.json").read_text())
    ids = {"image_token_id": 492, "video_token_id": 493, "vision_start_token_id": 489,
           "vision_end_token_id": 490, "eos_token_id": 482, "bos_token_id": 480}
    cfg.update(ids)
    if "text_config" in cfg:
        cfg["text_config"].update({k: v for k, v in ids.items() if k in ("eos_token_id", "bos_token_id")})
    config = Qwen2VLConfig(**{k: v for k, v in cfg.items() if k not in ("architectures",)})
    torch.manual_seed(0)
    dtype = torch.bfloat16 if size == "real" else torch.float32
    with torch.device(python_device):
        model = Qwen2VLForConditionalGeneration(config).to(dtype)
    model.save_pretrained(out_dir, safe_serialization=True)
    del model
    for name in ["tokenizer.json", "tokenizer_config.json", "chat_template.json", "generation_config.json"]:
        shutil.copy(tiny / name, out_dir / name)
    pre = json.loads((tiny / "preprocessor_config.json").read_text())
    if size == "real":
        pre["max_pixels"] = 12845056
    (out_dir / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))


def make_image(path, side):
    from PIL import Image

    img = Image.new("RGB", (side, side))
    px = img.load()
    for y in range(0, side, 4):
        for x in range(0, side, 4):
            c = ((x * 7) % 256, (y * 5) % 256, ((x + y) * 3) % 256)
            for dy in range(4):
                for dx in range(4):
                    if x + dx < side and y + dy < side:
                        px[x + dx, y + dy] = c
    img.save(path)


class Peak:
    """Polls one process's memory while it runs: its GPU memory from
    nvidia-smi (MiB), or its peak resident memory (VmHWM, KiB) on the CPU."""

    def __init__(self, pid, on_gpu):
        self.pid, self.peak, self.stop = pid, 0, False
        self.unit = 2**20 if on_gpu else 2**10
        self.thread = threading.Thread(target=self.loop if on_gpu else self.loop_rss, daemon=True)
        self.thread.start()

    def loop_rss(self):
        while not self.stop:
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak = max(self.peak, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.02)

    def loop(self):
        while not self.stop:
            out = subprocess.run(
                ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                capture_output=True, text=True).stdout
            for line in out.splitlines():
                parts = [p.strip() for p in line.split(",")]
                if len(parts) == 2 and parts[0] == str(self.pid) and parts[1].isdigit():
                    self.peak = max(self.peak, int(parts[1]))
            time.sleep(0.05)

    def finish(self):
        self.stop = True
        self.thread.join()
        return self.peak * self.unit


def side_by_side(binary, pid):
    """glimpse's sampler and nvidia-smi, read back to back."""
    ours = run_glimpse(binary, ["devices", "--json", "--samples", "2"], timeout=60)
    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=index,name,utilization.gpu,memory.used,memory.total,"
         "temperature.gpu,power.draw,power.limit,clocks.sm", "--format=csv,noheader,nounits"],
        capture_output=True, text=True).stdout
    apps = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True, text=True).stdout
    samples = [json.loads(l) for l in ours.stdout.splitlines() if l.strip()]
    rows = []
    last = samples[-1] if samples else None
    for line in smi.splitlines():
        f = [p.strip() for p in line.split(",")]
        if len(f) < 9:
            continue
        mine = next((d for d in (last or {}).get("gpus", {}).get("devices", []) if str(d["index"]) == f[0]), None)
        row = {"nvidia_smi": {"index": f[0], "name": f[1], "util_pct": f[2], "mem_used_mib": f[3],
                              "mem_total_mib": f[4], "temp_c": f[5], "power_w": f[6],
                              "power_limit_w": f[7], "sm_mhz": f[8]}}
        if mine:
            row["glimpse"] = {"name": mine["name"], "util_pct": mine["utilization_pct"],
                              "mem_used_mib": mine["memory_used"] // 2**20,
                              "mem_total_mib": mine["memory_total"] // 2**20,
                              "temp_c": mine["temperature_c"], "power_w": mine["power_watts"],
                              "power_limit_w": mine["power_limit_watts"], "sm_mhz": mine["sm_clock_mhz"],
                              "processes": mine["processes"]}
        rows.append(row)
        log(f"  nvidia-smi GPU {f[0]}: util {f[2]} %, mem {f[3]}/{f[4]} MiB, {f[5]} °C, "
            f"{f[6]}/{f[7]} W, SM {f[8]} MHz")
        if mine:
            g = row["glimpse"]
            log(f"  glimpse    GPU {f[0]}: util {g['util_pct']} %, mem {g['mem_used_mib']}/{g['mem_total_mib']} MiB, "
                f"{g['temp_c']} °C, {g['power_w']}/{g['power_limit_w']} W, SM {g['sm_mhz']} MHz")
            for p in g["processes"]:
                log(f"             pid {p['pid']} {p['name']} {p['memory_bytes']} B"
                    f"{'  <- the ask run' if p['pid'] == pid else ''}")
    log("  nvidia-smi compute apps: " + " | ".join(apps.split("\n")).strip(" |"))
    pane = run_glimpse(binary, ["devices", "--samples", "1"], timeout=60).stdout
    log(pane)
    return {"rows": rows, "compute_apps": apps, "glimpse_samples": samples, "pane": pane}


def estimate_vs_peak(binary, device, model_dir, image, context, on_gpu):
    args = ["ask", "--json", "--device", device, "--temperature", "0", "--max-tokens", "32",
            "--max-context", str(context), "--kv-cache", "f16", "--model", str(model_dir),
            "--image", str(image), "--prompt", "Describe the picture."]
    proc = subprocess.Popen([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = Peak(proc.pid, on_gpu)
    seen = None
    if on_gpu:
        # Compare the sampler with nvidia-smi once the run holds memory.
        for _ in range(600):
            if proc.poll() is not None:
                break
            if peak.peak > 0:
                time.sleep(1.0)
                seen = side_by_side(binary, proc.pid)
                break
            time.sleep(0.1)
    out, err = proc.communicate(timeout=900)
    measured = peak.finish()
    if proc.returncode != 0:
        log("  ask failed: " + err.strip()[-800:])
        return {"error": err.strip()[-2000:]}, seen
    j = json.loads(out)
    est = j["memory_estimate"]
    ratio = est["total_bytes"] / measured if measured else None
    log("  " + err.strip().replace("\n", "\n  "))
    log(f"  prompt {len(j['prompt_tokens'])} tokens, image grid {j['image_grid_thw']}, "
        f"{len(j['tokens'])} tokens generated, {j['timings']['decode_tok_s']:.1f} tokens/s")
    log(f"  estimate {est['total_bytes'] / 2**30:.2f} GiB (weights {est['weights_bytes'] / 2**30:.2f}, "
        f"KV {est['kv_cache_bytes'] / 2**30:.2f}, vision {est['vision_bytes'] / 2**30:.2f}, "
        f"prefill {est['prefill_bytes'] / 2**30:.2f}, runtime {est['runtime_bytes'] / 2**30:.2f})")
    what = "GPU memory of the process (nvidia-smi, 50 ms polls)" if on_gpu else "peak RSS (VmHWM, 20 ms polls)"
    log(f"  measured {what}: {measured / 2**30:.2f} GiB; estimate / measured = {ratio:.3f}")
    return {"estimate": est, "measured_peak_bytes": measured, "measured": what,
            "estimate_over_measured": ratio, "prompt_tokens": len(j["prompt_tokens"]),
            "image_grid_thw": j["image_grid_thw"], "timings": j["timings"], "model": j["model"]}, seen


def kv_switch(binary, device, model_dir, image):
    proc = run_glimpse(binary, [
        "ask", "--json", "--device", device, "--temperature", "0", "--max-tokens", "16",
        "--max-context", "8192", "--kv-cache", "auto", "--kv-threshold", "1",
        "--model", str(model_dir), "--image", str(image), "--prompt", "Describe the picture."])
    if proc.returncode != 0:
        log("  failed: " + proc.stderr.strip()[-500:])
        return {"error": proc.stderr.strip()[-2000:]}
    j = json.loads(proc.stdout)
    kv = j["kv_cache"]
    ok = kv["converted"] is not None and kv["format"] == "int8" and len(j["tokens"]) > 0
    log(f"  {'OK' if ok else 'NOT SWITCHED'}: {kv}, {len(j['tokens'])} tokens, finish {j['finish_reason']}")
    return {"ok": ok, "kv_cache": kv, "tokens": len(j["tokens"]), "finish_reason": j["finish_reason"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--dtype", default=None, help="default: bf16 on CUDA, f32 on the CPU")
    ap.add_argument("--size", choices=["real", "tiny"], default=None,
                    help="random model size (default: real on CUDA, tiny on the CPU)")
    ap.add_argument("--out", default="/tmp/glimpse-gpu-check")
    ap.add_argument("--parity-cases", type=int, default=0, help="0: all")
    ap.add_argument("--skip", default="", help="comma list of: parity,model,switch")
    ap.add_argument("--image-side", type=int, default=None,
                    help="side of the square test image (default: 2000, the largest unscaled)")
    ap.add_argument("--context", type=int, default=None,
                    help="--max-context of the estimate run (default: just above its prompt)")
    a = ap.parse_args()
    on_gpu = a.device.startswith("cuda")
    dtype = a.dtype or ("bf16" if on_gpu else "f32")
    size = a.size or ("real" if on_gpu else "tiny")
    skip = set(filter(None, a.skip.split(",")))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"device": a.device, "dtype": dtype, "size": size}
    t0 = time.time()

    log("== glimpse devices")
    log(run_glimpse(a.binary, ["devices", "--samples", "1"], timeout=60).stdout)
    if "parity" not in skip:
        log(f"== parity fixtures on {a.device} in {dtype} vs the recorded f32 CPU tokens")
        summary["parity"] = parity(a.binary, a.device, dtype, a.parity_cases)
    if "model" not in skip or "switch" not in skip:
        model_dir = out / f"qwen2_vl_{size}_random"
        if not (model_dir / "config.json").exists():
            log(f"== making a {size} random-weight Qwen2-VL in {model_dir}")
            t = time.time()
            make_model(model_dir, size, "cuda" if on_gpu else "cpu")
            log(f"  made in {time.time() - t:.0f} s")
        # The largest image glimpse lets through unscaled: 2000 px a side.
        side = a.image_side or (2000 if size == "real" else 300)
        image = out / f"square_{side}.png"
        if not image.exists():
            make_image(image, side)
        if "model" not in skip:
            log("== memory estimate vs measured peak (largest image)")
            # Room for the prompt (5041 image tokens at 2000 px, or a few for
            # the tiny model's 224 px cap) and the answer.
            context = a.context or (5120 if size == "real" else 256)
            summary["estimate"], summary["sampler_vs_nvidia_smi"] = estimate_vs_peak(
                a.binary, a.device, model_dir, image, context, on_gpu)
        if "switch" not in skip:
            log("== KV cache past its threshold (--kv-threshold 1)")
            summary["kv_switch"] = kv_switch(a.binary, a.device, model_dir, image)
    summary["wall_s"] = time.time() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"== summary written to {out / 'summary.json'} ({summary['wall_s']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
