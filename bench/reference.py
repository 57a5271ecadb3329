#!/usr/bin/env python3
"""Time transformers on a model directory the way `glimpse bench` times glimpse.

Same image, same prompt, same number of new tokens (stop tokens ignored), a
warm-up run, then medians over the repeats; prints one JSON object with the
same fields as `glimpse bench --json`, so the two can be divided.

    python bench/reference.py --model DIR --image card.png --new-tokens 64 --repeats 3 \
        [--follow-up "And the colours?"]

Definitions (identical to glimpse's):
  vision_s     the vision tower on the preprocessed image
  prefill_s    the prompt forward pass without the vision tower
  ttft_s       from the raw image file and prompt to the first new token
  decode_tok_s (new_tokens - 1) / (time for new_tokens - time for the first)

With --follow-up, each repeat then asks that question in the same conversation
(the first answer as the assistant turn) and asks it once more, as regenerating
an answer does; `follow_up` and `regenerate` hold the same four times for those
requests. They are timed the way transformers is used: a plain `generate` on
the whole two-turn conversation, image included, each time. transformers keeps
nothing between `generate` calls unless the caller passes a cache, so
`reused_tokens` is 0 and the vision tower and the first turn run again, where
glimpse reuses its cache of the request before.
"""

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import torch
import transformers

VISION_MARKERS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--image", type=Path)
    ap.add_argument("--prompt", default="Describe this image in detail.")
    ap.add_argument("--follow-up", help="a second question, asked after each timed answer")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    ap.add_argument("--attn", default="sdpa")
    args = ap.parse_args()

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    t0 = time.perf_counter()
    model = transformers.AutoModelForImageTextToText.from_pretrained(
        args.model, dtype=dtype, attn_implementation=args.attn).to(device).eval()
    processor = transformers.AutoProcessor.from_pretrained(args.model)
    sync(device)
    load_s = time.perf_counter() - t0

    content = []
    if args.image:
        content.append({"type": "image", "image": str(args.image.resolve())})
    content.append({"type": "text", "text": args.prompt})
    first_turn = [{"role": "user", "content": content}]

    def prepare(conversation):
        inputs = processor.apply_chat_template(conversation, tokenize=True, add_generation_prompt=True,
                                               return_dict=True, return_tensors="pt")
        return {k: v.to(device) for k, v in inputs.items()}

    def generate(inputs, n):
        return model.generate(**inputs, do_sample=False, max_new_tokens=n, min_new_tokens=n,
                              repetition_penalty=1.0, temperature=None, top_p=None, top_k=None)

    def time_prompt(conversation):
        """Time to first token, vision and prefill of one request; its inputs."""
        # Time to first token: from files to the first generated id.
        sync(device)
        t = time.perf_counter()
        inputs = prepare(conversation)
        generate(inputs, 1)
        sync(device)
        ttft = time.perf_counter() - t

        vision = 0.0
        if "pixel_values" in inputs:
            sync(device)
            t = time.perf_counter()
            model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
            sync(device)
            vision = time.perf_counter() - t

        sync(device)
        t = time.perf_counter()
        # Only the last position's logits, as generate() computes them.
        model(**inputs, use_cache=True, logits_to_keep=1)
        sync(device)
        prefill = time.perf_counter() - t - vision
        model.model.rope_deltas = None
        return {"vision_s": vision, "prefill_s": max(prefill, 0.0), "ttft_s": ttft}, inputs

    def time_answer(conversation):
        """time_prompt's times and the decode speed; the inputs and the answer's ids."""
        times, inputs = time_prompt(conversation)
        sync(device)
        t = time.perf_counter()
        generate(inputs, 1)
        sync(device)
        first = time.perf_counter() - t
        t = time.perf_counter()
        out = generate(inputs, args.new_tokens)
        sync(device)
        full = time.perf_counter() - t
        produced = out.shape[1] - inputs["input_ids"].shape[1]
        assert produced == args.new_tokens, produced
        times["decode_tok_s"] = (args.new_tokens - 1) / max(full - first, 1e-9)
        return times, inputs, out[0, inputs["input_ids"].shape[1]:]

    vocab = processor.tokenizer.get_vocab()
    # glimpse splits reasoning off only where both markers are single tokens.
    think_tokens = "<think>" in vocab and "</think>" in vocab

    def follow_up_of(answer_ids):
        # The answer and its reasoning apart, as glimpse splits them, and
        # without vision markers, as its chat sends an answer back.
        answer = processor.decode(answer_ids, skip_special_tokens=False)
        for marker in VISION_MARKERS:
            answer = answer.replace(marker, "")
        prompt = processor.apply_chat_template(first_turn, tokenize=False, add_generation_prompt=True)
        opened = think_tokens and prompt.rfind("<think>") > prompt.rfind("</think>")
        if think_tokens and not opened and answer.startswith("<think>"):
            opened, answer = True, answer[len("<think>"):]
        reply = {"role": "assistant", "content": answer}
        if opened:
            reasoning, _, rest = answer.partition("</think>")
            reply["content"] = rest.lstrip()
            if reasoning.strip():
                reply["reasoning_content"] = reasoning.strip()
        return first_turn + [reply, {"role": "user", "content": [{"type": "text", "text": args.follow_up}]}]

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    runs, follow_ups, regenerations = [], [], []
    with torch.inference_mode():
        for i in range(args.repeats + 1):
            times, inputs, answer_ids = time_answer(first_turn)
            if args.follow_up:
                conversation = follow_up_of(answer_ids)
                follow, follow_inputs, _ = time_answer(conversation)
                again, _, _ = time_answer(conversation)
            if i > 0:
                runs.append(times)
                if args.follow_up:
                    follow_ups.append(follow)
                    regenerations.append(again)

    def medians(rs):
        return {k: statistics.median(r[k] for r in rs) for k in ("vision_s", "prefill_s", "ttft_s", "decode_tok_s")}

    later = {}
    if args.follow_up:
        tokens = int(follow_inputs["input_ids"].shape[1])
        later = {name: {"prompt_tokens": tokens, "reused_tokens": 0, **medians(rs)}
                 for name, rs in (("follow_up", follow_ups), ("regenerate", regenerations))}

    grid = inputs.get("image_grid_thw")
    merge = processor.image_processor.merge_size
    image_tokens = int((grid[:, 0] * grid[:, 1] * grid[:, 2]).sum() // (merge * merge)) if grid is not None else 0
    if device.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(), "device_allocated"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process_rss"
    size = None
    if args.image:
        from PIL import Image
        with Image.open(args.image) as im:
            size = [im.width, im.height]
    report = {
        "implementation": "transformers",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "model": str(args.model),
        "model_type": model.config.model_type,
        "device": str(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": str(dtype).replace("torch.", ""),
        "attn_implementation": args.attn,
        "image_size": size,
        "image_tokens": image_tokens,
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "new_tokens": args.new_tokens,
        "repeats": args.repeats,
        "load_s": load_s,
        **medians(runs),
        **later,
        "peak_memory_bytes": int(peak),
        "peak_memory_kind": kind,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
