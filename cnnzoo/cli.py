"""`cnnzoo` command line: parses arguments, calls the library, prints.

User mistakes (`CnnzooError`) print as `file:line:col: error: ...` with a hint and exit 2
(3 when training itself failed); anything else is a cnnzoo bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from cnnzoo.errors import CnnzooError


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up lines (e.g. "failed call to cuInit" on CPU machines) confuse
    # more than they help; failures still arrive as Python exceptions. Set it to 0 to see them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # epoch lines reach `| tee log` as they happen
    from cnnzoo import console

    args = _parse(_parser(), argv)
    console.import_tensorflow_quietly()  # every command needs Keras
    console.show_warnings_as_one_line()
    try:
        return args.handler(args) or 0
    except CnnzooError as err:
        print(err, file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:  # e.g. `cnnzoo list layers | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Like parse_args, but `key=value` overrides may also come after options (argparse stops
    collecting a positional list at the first option, and its intermixed mode lacks subcommands)."""
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def _config_arguments(parser: argparse.ArgumentParser, overrides_help: str = "dotted overrides, e.g. train.epochs=3"):
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=overrides_help)


def _manual_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manual-dir", help="folder with the dataset's original files (or .npz arrays), to prepare it offline")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnzoo", description="CNN models from YAML configs, trained with Keras.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train a model from a config", description="Train a model from a config.")
    train.add_argument("--config", "-c", help="YAML config file (or give it as the first argument; not with --resume)")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.epochs=3")
    train.add_argument("--output-dir", help="run directory (default: runs/<model.name>-<timestamp>); new or empty")
    train.add_argument("--overwrite", action="store_true", help="replace an earlier run in --output-dir")
    _manual_dir_argument(train)
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last saved state")
    train.add_argument("--print-config", action="store_true", help="print the config with every default and exit")
    train.add_argument("--resolved", action="store_true",
                       help="with --print-config: also the layer list the model is built from, blocks expanded")
    train.add_argument("--dry-run", action="store_true", help="check everything and print the plan, as validate does")
    train.add_argument("--workers", metavar="HOST:PORT,...",
                       help="multi-worker training without writing TF_CONFIG: every worker's address, same order everywhere")
    train.add_argument("--worker-index", type=int, metavar="I", help="this process's place in --workers (0 is the chief)")
    train.set_defaults(handler=_train)

    validate = sub.add_parser(
        "validate", help="check a config for this machine and print the plan, without data or training",
        description="Check a config as `train` would, downloading and writing nothing: keys, types, layers, "
        "shapes, the dataset's metadata and availability, strategy, precision, optimizer, loss, callbacks.",
    )
    _config_arguments(validate)
    _manual_dir_argument(validate)
    validate.set_defaults(handler=_validate)

    sweep = sub.add_parser(
        "sweep", help="train a grid of overrides, one run each",
        description="Train every combination of the config's `sweep:` grid and --grid options, one after "
        "the other; compare them in TensorBoard's HParams tab. Run again to finish an interrupted sweep.",
    )
    _config_arguments(sweep, "overrides for every run")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                       help="values to try for one key (repeat for more keys)")
    sweep.add_argument("--output-dir", help="sweep folder (default: runs/sweep-<model.name>-<settings hash>)")
    _manual_dir_argument(sweep)
    sweep.set_defaults(handler=_sweep)

    inspect = sub.add_parser(
        "inspect", help="shapes, parameters, MACs and receptive fields per layer (no data, no training)",
        description="Build the model of a config and show, per layer: output shape, parameters, "
        "multiply-accumulates per image and receptive field. MACs count convolutions and Dense layers; FLOPs = 2 x MACs.",
    )
    _config_arguments(inspect)
    inspect.add_argument("--json", action="store_true", help="print the same as JSON")
    inspect.add_argument("--explain", action="store_true",
                         help="the size arithmetic, parameter sharing and sparse connections of each layer")
    inspect.add_argument("--toeplitz", metavar="LAYER",
                         help="the matrix a 1-channel slice of this Conv2D multiplies its input by")
    inspect.add_argument("--output", "-o", help="with --toeplitz: save the matrix as this PNG instead of printing it")
    inspect.set_defaults(handler=_inspect)

    schema = sub.add_parser("schema", help="print the JSON Schema of config files (for editors)",
                            description="Print the JSON Schema of cnnzoo config files, e.g. "
                            "`cnnzoo schema > cnnzoo.schema.json` for the YAML language server.")
    schema.set_defaults(handler=lambda args: print(json.dumps(_json_schema(), indent=2)))

    evaluate = sub.add_parser("evaluate", help="metrics of a trained model on a split of its dataset",
                              description="Evaluate a run's model (or a .keras file with --config) on its test split.")
    evaluate.add_argument("model", metavar="RUN_DIR_OR_MODEL")
    evaluate.add_argument("--split", help="TFDS split (default: the run's test split), e.g. train[:10%%]")
    evaluate.add_argument("--config", help="the config the model was trained with (default: the run's)")
    _manual_dir_argument(evaluate)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=_evaluate)

    predict = sub.add_parser("predict", help="top-k classes for images, with the run's preprocessing",
                             description="Classify PNG/JPEG images or .npy arrays of raw pixels (0-255).")
    predict.add_argument("model", metavar="RUN_DIR_OR_MODEL")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--config", help="the config the model was trained with (default: the run's)")
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(handler=_predict)

    export = sub.add_parser("export", help="the trained model with its preprocessing, for deployment",
                            description="Export a run's model with its preprocessing built in: it takes raw "
                            "pixels 0-255 and returns class probabilities.")
    export.add_argument("model", metavar="RUN_DIR_OR_MODEL")
    export.add_argument("--format", default="keras", choices=["keras", "savedmodel", "tflite"])
    export.add_argument("--quantize", action="store_true", help="tflite: int8 weights (dynamic-range quantisation)")
    export.add_argument("--output", "-o", help="where to write (default: RUN_DIR/export/...)")
    export.add_argument("--config", help="the config the model was trained with (default: the run's)")
    export.set_defaults(handler=_export)

    plot = sub.add_parser("plot", help="save loss/error curves of runs as a PNG",
                          description="Plot loss and error per epoch of one or more completed runs, overlaid.")
    plot.add_argument("runs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("--output", "-o", default="curves.png", help="PNG file to write (default: curves.png)")
    plot.add_argument("--title")
    plot.set_defaults(handler=_plot)

    listing = sub.add_parser("list", help="list the names a config may use")
    listing.add_argument("kind", choices=["layers", "optimizers", "schedules", "callbacks"])
    listing.set_defaults(handler=_list)
    return parser


def _train(args: argparse.Namespace) -> int:
    from cnnzoo.config.loader import load_config
    from cnnzoo.training import resume, trainer

    _set_tf_config(args)
    if args.resume:
        clash = [flag for flag, given in (("--config", args.config), ("--output-dir", args.output_dir),
                                          ("--print-config", args.print_config), ("--overwrite", args.overwrite),
                                          ("--dry-run", args.dry_run)) if given]
        if clash:
            raise CnnzooError(
                f"--resume continues a run in its own folder with the config saved there; {', '.join(clash)} "
                "cannot go with it",
                hint="Change settings of a resumed run with overrides, e.g. train.epochs=20.",
            )
        resume.resume(args.resume, tuple(args.overrides), manual_dir=args.manual_dir)
        return 0
    if not args.config and args.overrides and "=" not in args.overrides[0]:
        args.config, args.overrides = args.overrides[0], args.overrides[1:]  # `cnnzoo train configs/x.yaml`
    if not args.config:
        raise CnnzooError("no config given", hint="Usage: cnnzoo train --config configs/quickstart.yaml [key=value ...]")
    config = load_config(args.config, args.overrides)
    if args.print_config:
        print(config.to_yaml(resolved=args.resolved), end="")
        return 0
    if args.dry_run:
        return _print_plan(args.config, config, args.manual_dir)
    trainer.train(config, output_dir=args.output_dir, manual_dir=args.manual_dir, overwrite=args.overwrite)
    return 0


def _set_tf_config(args: argparse.Namespace) -> None:
    """--workers/--worker-index -> TF_CONFIG, which MultiWorkerMirroredStrategy reads."""
    from cnnzoo.runtime.strategy import local_tf_config

    if args.workers is None and args.worker_index is None:
        return
    workers = [w.strip() for w in (args.workers or "").split(",") if w.strip()]
    if not workers or args.worker_index is None or not 0 <= args.worker_index < len(workers):
        raise CnnzooError(
            "--workers and --worker-index go together: the list of every worker's HOST:PORT and this "
            "process's index in it",
            hint="E.g. on two machines: `--workers a:2222,b:2222 --worker-index 0` on a and `... 1` on b.",
        )
    os.environ["TF_CONFIG"] = local_tf_config(workers, args.worker_index)


def _validate(args: argparse.Namespace) -> int:
    from cnnzoo.config.loader import load_config

    return _print_plan(args.config, load_config(args.config, args.overrides), args.manual_dir)


def _print_plan(source: str, config, manual_dir: str | None) -> int:
    from cnnzoo.models.shapes import fmt
    from cnnzoo.plan import plan

    planned = plan(config, manual_dir)
    planned.warn()
    model = planned.model
    print(f"{source}: OK: model `{model.name}` {fmt(model.input_shape)} -> {fmt(model.output_shape)}, "
          f"{len(model.layers) - 1} Keras layers, {model.count_params():,} parameters")
    print("\n".join(f"  {line}" for line in planned.lines()))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from cnnzoo.training.sweep import sweep

    sweep(args.config, list(args.overrides), args.grid, output_dir=args.output_dir, manual_dir=args.manual_dir)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from cnnzoo.config.loader import load_config
    from cnnzoo.models import explain, inspect
    from cnnzoo.plan import plan

    model = plan(load_config(args.config, args.overrides), data_needed=False).model
    if args.toeplitz:
        matrix, title = explain.toeplitz_of(model, args.toeplitz)
        if args.output:
            explain.save_matrix_png(matrix, args.output, title)
            print(f"cnnzoo: wrote {args.output} ({title})")
        else:
            print(f"{title}\n{explain.format_matrix(matrix)}")
        return 0
    info = inspect.summary(model)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(inspect.render(info))
    if args.explain:
        print("\n" + "\n".join(explain.explain(model)))
    return 0


def _json_schema() -> dict:
    from cnnzoo.config.schema import json_schema

    return json_schema()


def _evaluate(args: argparse.Namespace) -> int:
    from cnnzoo.deploy.evaluate import evaluate

    result = evaluate(args.model, args.split, args.config, args.manual_dir)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['model']} on {result['dataset']} {result['split']}:")
    for name, value in result["metrics"].items():
        print(f"  {name:<12} {value:.4f}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from cnnzoo.deploy.predict import predict

    results = predict(args.model, args.images, args.top_k, args.config)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for result in results:
        best = ", ".join(f"{t['name']} {t['probability']:.1%}" for t in result["top"])
        print(f"{result['input']}: {best}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from cnnzoo.deploy.export import export

    path = export(args.model, args.format, args.output, args.quantize, args.config)
    print(f"cnnzoo: wrote {path} (input: raw pixels 0-255, preprocessing included; output: class probabilities)")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from cnnzoo.training.plot import plot_runs

    print(f"cnnzoo: wrote {plot_runs(args.runs, args.output, args.title)}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from cnnzoo import registry

    table = {"layers": registry.layers, "optimizers": registry.optimizers,
             "schedules": registry.schedules, "callbacks": registry.callbacks}[args.kind]()
    print("\n".join(table.names()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
