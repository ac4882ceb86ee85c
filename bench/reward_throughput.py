"""Reward-model throughput: frames/s for several models, batch sizes and precisions.

Frames are uint8 (N, H, W, 3) at the render size, so the figures include host-to-device
copies and preprocessing on the device, as in training. Side by side, in the same run, the
straightforward implementation (open_clip's PIL transform per frame, one frame per forward
pass) shows what batching buys.

On a GPU the script also reports achieved TFLOP/s of the image tower against the device's
bf16 dense peak (FLOPs counted by torch.utils.flop_counter on one forward pass).

    python bench/reward_throughput.py                      # CPU, tiny random model
    python bench/reward_throughput.py --models ViT-B-32/random ViT-L-14/random ViT-bigG-14/random \
        --batch-sizes 64 256 512 --precisions fp32 bf16    # GPU
    python bench/reward_throughput.py --devices cuda:0 cuda:1 cuda:2 cuda:3  # + multi-GPU scaling

With vlmrm-transformers installed, the transformers backends are timed too (``--transformers-models``;
default: a tiny random CLIP, SigLIP, SigLIP 2 NaFlex, X-CLIP and LLaVA judge): frames/s of the reward model beside the
checkpoint's own processor pipeline (PIL preprocessing on the CPU, the same batch); video models in
both modes, where frames/s counts episode steps rewarded.

    python bench/reward_throughput.py --models none --transformers-models \
        hf:google/siglip-base-patch16-224 hf:microsoft/xclip-base-patch32 hf:llava-hf/llava-1.5-7b-hf
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import open_clip
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode
from vlmrm_reward import RewardModel, load_reward_model
from vlmrm_reward.testing import make_tiny_open_clip

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s.
BF16_PEAK_TFLOPS = {
    "H100 80GB HBM3": 989.0,  # SXM
    "H100 SXM": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H200": 989.0,
    "A100": 312.0,
    "A6000": 154.8,
    "L40S": 362.0,
    "RTX 4090": 165.2,
}


def device_peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    matches = [peak for key, peak in BF16_PEAK_TFLOPS.items() if key in name]
    return matches[0] if matches else None


def image_tower_flops(reward_model: RewardModel) -> float:
    """FLOPs of one image through the image tower of a loaded single-device model (multiply-add = 2 FLOPs).

    Counted by torch's FlopCounterMode on one frame at the model's input size, through the public
    ``embed_images``: matrix products and convolutions, which is what the tensor cores run (the
    resize and normalisation are not counted, and at the input size there is no resize).
    """
    height, width = reward_model.preprocess_config.size
    frame = np.zeros((1, height, width, 3), dtype=np.uint8)
    with FlopCounterMode(display=False) as counter:
        reward_model.embed_images(frame)  # one device: runs on this thread, where the counter is active
    return float(counter.get_total_flops())


def time_calls(fn, frames: np.ndarray, repeats: int, device: torch.device) -> float:
    fn(frames[: max(1, len(frames) // 8)])  # warm-up: kernels, allocator, autotuning
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn(frames)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def naive_scorer(model_spec: str, device: torch.device, prompt: str):
    """Per-frame PIL preprocessing and one forward pass per frame, in fp32."""
    clip, _, transform = open_clip.create_model_and_transforms(
        model_spec.split("/")[0] if not model_spec.startswith("local-dir:") else model_spec
    )
    clip = clip.to(device).eval()
    tokens = open_clip.get_tokenizer(
        model_spec.split("/")[0] if not model_spec.startswith("local-dir:") else model_spec
    )
    with torch.inference_mode():
        goal = torch.nn.functional.normalize(clip.encode_text(tokens([prompt]).to(device)), dim=-1)

    def score(frames: np.ndarray) -> np.ndarray:
        rewards = []
        with torch.inference_mode():
            for frame in frames:
                pixels = transform(Image.fromarray(frame)).unsqueeze(0).to(device)
                embedding = torch.nn.functional.normalize(clip.encode_image(pixels), dim=-1)
                rewards.append((embedding @ goal.T).item())
        return np.array(rewards)

    return score


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="+", default=None, help="model specs (default: a tiny random model)"
    )
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 64, 256])
    parser.add_argument(
        "--precisions", nargs="+", default=None, help="default: fp32 on CPU, fp32 and bf16 on GPU"
    )
    parser.add_argument("--frames", type=int, default=512, help="frames per timed call")
    parser.add_argument(
        "--size", type=int, nargs=2, default=[224, 224], metavar=("H", "W"), help="render size"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--devices",
        nargs="+",
        default=["cuda:0" if torch.cuda.is_available() else "cpu"],
        help="the first is timed alone; with several, all together too (scaling vs one device)",
    )
    parser.add_argument(
        "--naive-frames", type=int, default=64, help="frames for the per-frame baseline (0: skip)"
    )
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the device's bf16 peak")
    parser.add_argument(
        "--transformers-models",
        nargs="*",
        default=None,
        help="specs for the transformers backend (default: tiny random models; none given: skip)",
    )
    args = parser.parse_args()

    device = torch.device(args.devices[0])
    models = args.models or [make_tiny_open_clip(tempfile.mkdtemp(), image_size=224, patch_size=32)]
    models = [model for model in models if model != "none"]
    precisions = args.precisions or (["fp32", "bf16"] if device.type == "cuda" else ["fp32"])
    peak = args.peak_tflops or device_peak_tflops(device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"device: {name}; frames {args.size[0]}x{args.size[1]} uint8; bf16 peak: {peak or 'unknown'} TFLOP/s"
    )
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(args.frames, *args.size, 3), dtype=np.uint8)

    header = f"{'model':<28} {'precision':>9} {'batch':>6} {'frames/s':>10} {'TFLOP/s':>8} {'% peak':>7}"
    for model in models:
        label = "tiny (random)" if model.startswith("local-dir:") else model
        with load_reward_model(model, target_prompts=["x"], device=device, precision="fp32") as counted:
            flops = image_tower_flops(counted)
        print(f"\n{label}: {flops / 1e9:.2f} GFLOPs per image (image tower)")
        print(header)
        best, best_setting = 0.0, (precisions[0], args.batch_sizes[0])
        for precision in precisions:
            for batch_size in args.batch_sizes:
                reward_model = load_reward_model(
                    model,
                    target_prompts=["a robot"],
                    device=device,
                    batch_size=batch_size,
                    precision=precision,
                )
                seconds = time_calls(reward_model, frames, args.repeats, device)
                reward_model.close()
                fps = len(frames) / seconds
                if fps > best:
                    best, best_setting = fps, (precision, batch_size)
                tflops = fps * flops / 1e12
                share = f"{100 * tflops / peak:6.1f}%" if peak else "     -"
                print(f"{label:<28} {precision:>9} {batch_size:>6} {fps:>10.1f} {tflops:>8.2f} {share:>7}")
        if len(args.devices) > 1:
            precision, batch_size = best_setting
            # Per-device batch as in the best single-device setting, so each replica is as busy.
            reward_model = load_reward_model(
                model,
                target_prompts=["a robot"],
                devices=args.devices,
                batch_size=batch_size * len(args.devices),
                precision=precision,
            )
            many = np.concatenate([frames] * len(args.devices))
            fps = len(many) / time_calls(reward_model, many, args.repeats, device)
            reward_model.close()
            n = len(args.devices)
            print(
                f"{label:<28} {precision:>9} {batch_size * n:>6} {fps:>10.1f}   on {n} devices: "
                f"{fps / best:.2f}x one device = {fps / best / n:.2f} x N"
            )
        if args.naive_frames:
            naive = naive_scorer(model, device, "a robot")
            seconds = time_calls(naive, frames[: args.naive_frames], 1, device)
            naive_fps = args.naive_frames / seconds
            print(f"{label:<28} {'per-frame':>9} {1:>6} {naive_fps:>10.1f}   (PIL + one frame per forward)")
            print(f"speed-up of the batched scorer over per-frame scoring: {best / naive_fps:.1f}x")
    if args.transformers_models != []:
        transformers_throughput(
            args.transformers_models, frames, args.batch_sizes, precisions[0], device, args
        )


def transformers_throughput(
    specs: list[str] | None,
    frames: np.ndarray,
    batch_sizes: list[int],
    precision: str,
    device: torch.device,
    args,
) -> None:
    """Frames/s of each transformers model kind, beside its own processor pipeline (image-text models)."""
    try:
        from vlmrm_transformers import testing
    except ImportError:
        print("\nvlmrm-transformers is not installed: its backends are not timed")
        return
    if specs is None:
        root = tempfile.mkdtemp()
        specs = [
            getattr(testing, f"make_tiny_{family}")(f"{root}/{family}")
            for family in ("clip", "siglip", "siglip2", "xclip", "llava")
        ]
    print(f"\ntransformers backend ({precision}); frames/s, or episode steps/s for video models")
    print(f"{'model':<36} {'kind':>16} {'batch':>6} {'frames/s':>10}")
    for spec in specs:
        label = (
            spec if not spec.startswith("hf:/") else f"tiny {spec.rstrip('/').rpartition('/')[2]} (random)"
        )
        kinds = [{}]
        probe = load_reward_model(spec, backend="transformers", target_prompts=["a robot"], device=device)
        kind = type(probe).__name__
        probe.close()
        if kind == "VideoRewardModel":
            kinds = [{"video_mode": "episode"}, {"video_mode": "window", "window_size": 16}]
        for options in kinds:
            for batch_size in batch_sizes:
                reward_model = load_reward_model(
                    spec,
                    backend="transformers",
                    target_prompts=["a robot"],
                    device=device,
                    batch_size=batch_size,
                    precision=precision,
                    **options,
                )
                seconds = time_calls(reward_model, frames, args.repeats, device)
                reward_model.close()
                name = options.get("video_mode", kind.removesuffix("RewardModel").lower() or "image-text")
                print(f"{label:<36} {name:>16} {batch_size:>6} {len(frames) / seconds:>10.1f}")
        if kind == "RewardModel" and args.naive_frames:
            seconds = time_calls(processor_scorer(spec, device), frames[: args.naive_frames], 1, device)
            print(
                f"{label:<36} {'processor (PIL)':>16} {args.naive_frames:>6} {args.naive_frames / seconds:>10.1f}"
            )


def processor_scorer(spec: str, device: torch.device):
    """The checkpoint's own pipeline: its image processor on the CPU, then one forward pass (fp32)."""
    from transformers import AutoImageProcessor, AutoModel

    source = spec.removeprefix("hf:")
    processor, network = (
        AutoImageProcessor.from_pretrained(source),
        AutoModel.from_pretrained(source).to(device),
    )

    def score(frames: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            pixels = processor(images=list(frames), return_tensors="pt")["pixel_values"].to(device)
            output = network.get_image_features(pixel_values=pixels)
        return getattr(output, "pooler_output", output).cpu().numpy()

    return score


if __name__ == "__main__":
    main()
