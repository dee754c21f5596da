"""Subcommands ``siamlab diagnose`` and ``siamlab export`` (registered by :func:`register` in siamlab/cli.py)."""
from __future__ import annotations

import argparse

DIAGNOSE_EXAMPLES = """\
examples:
  siamlab diagnose RUN/export/backbone-torchvision-last.pt --data fashion_mnist
  siamlab diagnose backbone.torchscript.pt --data fashion_mnist --set data.train_subset=2000
  siamlab diagnose RUN                                    # a siamlab run: its checkpoint and its data
"""

EXPORT_EXAMPLES = """\
examples:
  siamlab export RUN --format torchvision      # then torchvision.models.resnet18().load_state_dict(sd, strict=True)
  siamlab export RUN --checkpoint best --format torchscript --out backbone.torchscript.pt
  siamlab export RUN --format state_dict --projector
"""


def cmd_diagnose(args) -> int:
    from .diagnose import diagnose, summary_text

    res = diagnose(args.model, data=args.data, projector=args.projector, out_dir=args.out, overrides=args.set)
    print(summary_text(res))
    print(f"report: {res['html']}")
    return 0


def cmd_export(args) -> int:
    from .export import export_run

    res = export_run(args.run, fmt=args.format, checkpoint=args.checkpoint, out=args.out, projector=args.projector,
                     num_classes=args.num_classes)
    for f in res["files"]:
        print(f"wrote {f}")
    if res["note"]:
        print(f"note: {res['note']}")
    return 0


def register(sub) -> None:
    """Add ``diagnose`` and ``export`` to the CLI's subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    d = sub.add_parser("diagnose", help="collapse diagnostics and kNN/NCM of a model siamlab did not train, beside random init",
                       epilog=DIAGNOSE_EXAMPLES, formatter_class=raw)
    d.add_argument("model", help="checkpoint or state dict (siamlab, torchvision, lightly, solo-learn, Lightning .ckpt, DDP; any prefix), "
                        "TorchScript file or run directory")
    d.add_argument("--projector", help="optional projector: an nn.Sequential MLP state dict (e.g. lightly's projection_head.state_dict()) or a TorchScript file")
    d.add_argument("--data", help="dataset name (see `siamlab datasets`); default: the one the file names")
    d.add_argument("--set", action="append", metavar="KEY=VALUE", help="data.* / eval.* field, e.g. data.root=/data (repeatable)")
    d.add_argument("--out", help="output folder (default runs/diagnose/<model file name>)")
    d.set_defaults(func=cmd_diagnose)

    e = sub.add_parser("export", help="write a run's backbone for torchvision, as a state dict or as TorchScript",
                       epilog=EXPORT_EXAMPLES, formatter_class=raw)
    e.add_argument("run")
    e.add_argument("--checkpoint", default="last", choices=["last", "best"])
    e.add_argument("--format", default="torchvision", choices=["torchvision", "state_dict", "torchscript"])
    e.add_argument("--out", help="output file (default RUN/export/backbone-<format>-<checkpoint>.pt)")
    e.add_argument("--projector", action="store_true", help="also export the projector")
    e.add_argument("--num-classes", type=int, default=1000, help="rows of the zero fc layer in the torchvision format")
    e.set_defaults(func=cmd_export)
