"""Real CT slices from pydicom's test data -> datasets/ct/ct_slices.h5.

An uncompressed CT DICOM file that ships with the `pydicom` package (PyPI):

    pip install pydicom
    python datasets/ct/make_ct_slices.py

Slice 0: `CT_small.dcm` (pydicom), a 128 x 128 axial CT through a vertebra, downsized by pydicom from the
NEMA WG04 test image `CT1_UNC`. (pydicom-data's head CT `693_UNCI.dcm` is left out: it comes from the
CQ500 data set, whose CC BY-NC-SA licence does not allow shipping it in an MIT package.) It is converted to Hounsfield units (pixel * RescaleSlope +
RescaleIntercept), mapped to [0, 1] with a fixed window (`WINDOWS_HU`, wide enough to keep bone), clipped to
[0, 1], resampled to 128 x 128 by area averaging and stored as float32. The output is written to a
temporary file and renamed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from sciml._io import atomic_path

SIZE = 128
# (file, package, window [low, high] in HU, description, licence)
SLICES = [
    ("CT_small.dcm", "pydicom", (-160.0, 1240.0),
     "axial CT through a vertebra (vertebral body, spinal canal, paraspinal muscle), 128 x 128, reduced by "
     "pydicom from the NEMA WG04 test image CT1_UNC (GE Medical Systems)",
     "pydicom test file (pydicom is MIT-licensed); pydicom/data/test_files/README.txt: 'I believe there is no "
     "restriction on using any of these files in this manner.' Original: NEMA DICOM WG04 compression test data "
     "set, ftp://medical.nema.org/MEDICAL/Dicom/DataSets/WG04/"),
]


def _pydicom():
    try:
        import pydicom
        import pydicom.data
    except ImportError:
        sys.exit("make_ct_slices.py needs pydicom: pip install pydicom")
    return pydicom


def hounsfield(ds) -> np.ndarray:
    """The slice in Hounsfield units (float64)."""
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    intercept = float(getattr(ds, "RescaleIntercept", 0.0))
    return ds.pixel_array.astype(np.float64) * slope + intercept


def window(hu: np.ndarray, low: float, high: float) -> np.ndarray:
    """HU -> [0, 1]: `low` -> 0, `high` -> 1, clipped; then area-averaged to SIZE x SIZE."""
    img = np.clip((hu - low) / (high - low), 0.0, 1.0)
    t = torch.from_numpy(np.ascontiguousarray(img))[None, None]
    if t.shape[-2:] != (SIZE, SIZE):
        t = F.interpolate(t, size=(SIZE, SIZE), mode="area")
    return t[0, 0].numpy().astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("ct_slices.h5"))
    args = parser.parse_args(argv)
    pydicom = _pydicom()
    images, meta = [], []
    for name, package, (low, high), what, licence in SLICES:
        path = pydicom.data.get_testdata_file(name)
        if path is None:
            sys.exit(f"{name} not found: pip install pydicom")
        raw = Path(path).read_bytes()
        ds = pydicom.dcmread(path)
        if ds.Modality != "CT":
            raise ValueError(f"{name}: modality {ds.Modality}, expected CT")
        hu = hounsfield(ds)
        images.append(window(hu, low, high))
        spacing = [float(v) for v in ds.PixelSpacing]
        meta.append({
            "file": name, "package": package, "sha256": hashlib.sha256(raw).hexdigest(),
            "source_shape": list(hu.shape), "source_pixel_size_mm": spacing,
            "pixel_size_mm": [spacing[0] * hu.shape[0] / SIZE, spacing[1] * hu.shape[1] / SIZE],
            "window_hu": [low, high], "description": what, "licence": licence,
        })
    images = np.stack(images)
    with atomic_path(args.out) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("images", data=images, chunks=(1, SIZE, SIZE), compression="gzip", compression_opts=9,
                             shuffle=True)
            f.create_dataset("source", data=[f"{m['package']}:{m['file']}: {m['description']}" for m in meta],
                             dtype=h5py.string_dtype())
            f.create_dataset("window_hu", data=np.array([m["window_hu"] for m in meta]))
            f.attrs.update({
                "slices": json.dumps(meta),
                "licence": " | ".join(f"slice {i}: {m['licence']}" for i, m in enumerate(meta)),
                "normalisation": "HU = pixel * RescaleSlope + RescaleIntercept; (HU - low) / (high - low) with the "
                                 "slice's window_hu, clipped to [0, 1], then area-averaged to 128 x 128",
                "orientation": "axial, as stored in the DICOM files (rows anterior -> posterior)",
                "recipe": "datasets/ct/make_ct_slices.py",
                "pydicom_version": pydicom.__version__,
            })
    for i, m in enumerate(meta):
        img = images[i]
        print(f"slice {i}: {m['file']} window {m['window_hu']} HU, range [{img.min():.3f}, {img.max():.3f}], "
              f"mean {img.mean():.3f}, > 0.05: {(img > 0.05).mean():.2f}")
    print(f"{args.out}: images {images.shape} {images.dtype}, {args.out.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
