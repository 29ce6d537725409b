"""Regenerate the sample batch shipped in the repo: ``python samples/make_samples.py``.

Writes, next to this script:
  batch-onboarding-10.xlsx                — the batch template with 10 realistic merchants (R001…R010)
  batch-onboarding-10-documents.zip       — their documents as small generated PNGs: R001/licence.png, …

Every merchant is valid: unified social credit codes and resident ID numbers carry correct check characters,
settlement accounts follow the channels' rules, and the requested products (wechat.*, alipay.*, unionpay.*) are
onboarded by the demo channel accounts. In the demo: Onboarding → Batch import, upload both files, confirm, submit
all drafts; a risk officer approves them and the contracts progress to active.

Needs no database or Django settings. Output is reproducible: dates derive from ``--today`` (default
``SAMPLE_DAY``), and every ID in the sample stays valid for at least 8 years after it; pass a later ``--today``
to refresh them (tests/merchants/test_batch_samples.py checks the shipped files match this script).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from merchants.batch.examples import documents_zip, example_rows  # noqa: E402
from merchants.batch.template import template_xlsx  # noqa: E402

SHEET = "batch-onboarding-10.xlsx"
DOCUMENTS = "batch-onboarding-10-documents.zip"
SEED = 2026
SAMPLE_DAY = dt.date(2026, 11, 26)


def sample_rows(today: dt.date = SAMPLE_DAY) -> list[dict]:
    return example_rows(10, seed=SEED, today=today)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write to (default: samples/)")
    parser.add_argument("--today", type=dt.date.fromisoformat, default=SAMPLE_DAY,
                        help=f"YYYY-MM-DD the dates are computed from (default {SAMPLE_DAY})")
    args = parser.parse_args(argv)
    rows = sample_rows(args.today)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / SHEET).write_bytes(template_xlsx(rows))
    (args.out / DOCUMENTS).write_bytes(documents_zip(rows))
    print(f"wrote {args.out / SHEET} ({len(rows)} merchants) and {args.out / DOCUMENTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
