"""What ``python -m cmtutor evaluate`` reports: sample quality against held-out data, with its protocol.

Vectors: exact W2 on subsamples (with its finite-sample floor and the ratio's standard error), sliced W2, MMD.
Images: FID through clean-fid (protocol beside the number), FD-digits for the digits. With a teacher, both
add the ODE error: the mean squared distance to the teacher's PF-ODE solution from the same noise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from cmtutor.checkpoint import load_checkpoint, model_from_checkpoint
from cmtutor.core.metrics import ode_error, vector_metrics
from cmtutor.core.solvers import sample_ode
from cmtutor.data.images import describe, load_images, read_image_file
from cmtutor.data.sources import scaler_from_dict
from cmtutor.data.vectors import load_vectors, read_vector_file
from cmtutor.errors import UserError
from cmtutor.evaluation import digits_fd
from cmtutor.evaluation.photos_fd import PHOTOS
from cmtutor.evaluation import fid as fidlib
from cmtutor.hardware.accel import hardware, resolve_device
from cmtutor.sampler import DEFAULT_ODE_STEPS, Sampler, unit_noise


def vector_report(path: Path, data_name: str, n: int, repeats: int, teacher: str | None = None,
                  device: str = "auto") -> dict[str, Any]:
    """W2 (exact, on subsamples; its floor and their ratio), sliced W2 and MMD against the held-out split, and
    the ODE error with a teacher."""
    samples = read_vector_file(path)
    data = load_vectors(data_name)
    if samples.shape[1] != data.dim:
        raise UserError(f"{path} has {samples.shape[1]}-dimensional samples but {data_name} is "
                        f"{data.dim}-dimensional")
    result: dict[str, Any] = {"samples": str(path), "data": data_name,
                              **vector_metrics(samples, data.heldout, n, repeats)}
    if teacher:
        result["ode_error"] = ode_error_to_teacher(path, samples, teacher, device)
    return result


def print_report(result: dict[str, Any], as_json: bool = False) -> None:
    """One JSON object, or one ``key  value`` line per entry (protocols in words)."""
    if as_json:
        print(json.dumps(result))
        return
    width = max(len(k) for k in result)
    for k, v in result.items():
        if isinstance(v, dict):
            v = fidlib.format_protocol(v)
        print(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}")


def image_report(path: Path, data_name: str, fid_mode: str = "legacy_tensorflow", inception: str | None = None,
                 ref: str = "train", with_fid: bool = True, teacher: str | None = None,
                 device: str = "auto") -> dict[str, Any]:
    """FID (clean-fid, protocol beside it), FD-digits / FD-photos for those sets, ODE error with --teacher."""
    samples = read_image_file(path)
    data = load_images(data_name)
    c, h, w = data.shape
    if samples.shape[1:] != (h, w, c):
        raise UserError(f"{path} holds images of shape {samples.shape[1:]}, but {data_name} has {(h, w, c)}")
    meta_path = Path(str(path) + ".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    sample_proto = {k: meta[k] for k in ("method", "weights", "steps", "seed", "precision") if k in meta}
    if meta.get("hardware"):
        sample_proto["sampled_on"] = meta["hardware"]
    result: dict[str, Any] = {"samples": str(path), **describe(data), "n": int(len(samples))}
    small = {"digits": digits_fd.DIGITS, "photos": PHOTOS}.get(data.name)
    if small is not None:  # the set's own quick distance (keys fd_digits, fd_photos)
        key = f"fd_{data.name}"
        result[key] = small.fd(samples)
        result[f"{key}_floor"] = small.floor(len(samples))
        result[f"{key}_protocol"] = {**small.protocol(len(samples)), **sample_proto}
    if with_fid:
        reference = data.train if ref == "train" else data.heldout
        ref_label = f"{data.name} {'train' if ref == 'train' else data.heldout_split}"
        try:
            ext = fidlib.inception(fid_mode, inception, device=str(resolve_device(device)))
        except UserError as exc:
            if small is None or inception:
                raise
            result["fid"] = None
            result["fid_note"] = f"skipped: {exc}"
        else:
            res = fidlib.fid(samples, reference, ref_label, ext,
                             {**sample_proto, "evaluated_on": hardware(),
                              **({"data_note": data.note} if data.note else {})})
            result["fid"] = res["value"]
            result["fid_protocol"] = res["protocol"]
    if teacher:
        result["ode_error"] = ode_error_to_teacher(path, samples.astype("float32"), teacher, device)
    return result


def ode_error_to_teacher(path: Path, samples: Any, teacher_path: str, device: str) -> float:
    """Mean squared distance (per dimension, raw units) to the teacher's PF-ODE solution from the same noise."""
    meta_path = Path(str(path) + ".json")
    if not meta_path.exists():
        raise UserError(f"ode_error needs {meta_path.name} beside the samples (written by "
                        "`python -m cmtutor sample`: it records the noise seed)")
    meta = json.loads(meta_path.read_text())
    ckpt = load_checkpoint(teacher_path, ("diffusion",), role="--teacher")
    dev = resolve_device(device)
    if isinstance(ckpt["dim"], int):
        if ckpt["dim"] != samples.shape[1]:
            raise UserError(f"--teacher is {ckpt['dim']}-dimensional but the samples are "
                            f"{samples.shape[1]}-dimensional")
        teacher = model_from_checkpoint(ckpt).to(dev)
        noise = teacher.noise
        z = unit_noise(meta["n"], (ckpt["dim"],), meta["seed"]).to(dev)
        with torch.no_grad():
            ref = sample_ode(teacher, z, noise.sigma_min, noise.sigma_max, steps=DEFAULT_ODE_STEPS)
        ref_raw = scaler_from_dict(ckpt["standardizer"]).decode(ref).cpu().numpy()
        return ode_error(samples, ref_raw)
    # images: the teacher's ODE solution from the same per-image noise, compared in [-1, 1] units
    c, h, w = ckpt["dim"]
    if samples.shape[1:] != (h, w, c):
        raise UserError(f"--teacher generates images of shape {(h, w, c)}, the samples are {samples.shape[1:]}")
    teacher_sampler = Sampler.from_checkpoint(teacher_path, device=str(dev))
    ref = teacher_sampler.sample_images(meta["n"], steps=DEFAULT_ODE_STEPS, seed=meta["seed"])
    return ode_error(samples / 127.5 - 1.0, ref.astype("float32") / 127.5 - 1.0)
