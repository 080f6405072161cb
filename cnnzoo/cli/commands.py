"""What each subcommand does: load, call the library, print. Nothing here decides anything a library
call could: `cnnzoo.plan` checks, `cnnzoo.training` trains, `cnnzoo.deploy` evaluates and exports."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
from pathlib import Path

from cnnzoo.errors import CnnzooError, ConfigError


def train(args: argparse.Namespace) -> int:
    from cnnzoo.config.loader import load_config

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
        from cnnzoo.training import resume  # TensorFlow: only once the arguments are known to be right

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
    from cnnzoo.training import trainer  # TensorFlow: only once the config is known to be right

    trainer.train(config, output_dir=args.output_dir, manual_dir=args.manual_dir, overwrite=args.overwrite)
    return 0


def _set_tf_config(args: argparse.Namespace) -> None:
    """--workers/--worker-index -> TF_CONFIG, which MultiWorkerMirroredStrategy reads."""
    from cnnzoo.runtime.cluster import local_tf_config

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


def validate(args: argparse.Namespace) -> int:
    from cnnzoo.config.loader import load_config

    return _print_plan(args.config, load_config(args.config, args.overrides), args.manual_dir)


def _print_plan(source: str, config, manual_dir: str | None) -> int:
    from cnnzoo.models.shapes import fmt
    from cnnzoo.plan import plan

    with _shapes_only_unless(config.model.weights):
        planned = plan(config, manual_dir)
        planned.warn()
        model = planned.model
        print(f"{source}: OK: model `{model.name}` {fmt(model.input_shape)} -> {fmt(model.output_shape)}, "
              f"{len(model.layers) - 1} Keras layers, {model.count_params():,} parameters")
        print("\n".join(f"  {line}" for line in planned.lines()))
    return 0


def _shapes_only_unless(values_needed):
    """What prints a model's shapes builds it without drawing initial values; weights to load
    (`model.weights`) are checked against real ones."""
    from cnnzoo.models.weights_budget import shapes_only

    return contextlib.nullcontext() if values_needed else shapes_only()


def sweep(args: argparse.Namespace) -> int:
    from cnnzoo.training.sweep import sweep

    sweep(args.config, list(args.overrides), args.grid, output_dir=args.output_dir, manual_dir=args.manual_dir)
    return 0


def search(args: argparse.Namespace) -> int:
    from cnnzoo.training.search import search

    search(args.config, list(args.overrides), trials=args.trials, output_dir=args.output_dir, storage=args.storage,
           manual_dir=args.manual_dir)
    return 0


def inspect(args: argparse.Namespace) -> int:
    from cnnzoo.config.loader import load_config
    from cnnzoo.models import explain, inspect
    from cnnzoo.plan import plan

    config = load_config(args.config, args.overrides)
    with _shapes_only_unless(config.model.weights or args.toeplitz):  # a Toeplitz matrix reads a kernel
        model = plan(config, data_needed=False).model
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


def schema(args: argparse.Namespace) -> int:
    from cnnzoo.config.json_schema import json_schema
    from cnnzoo.config.reference import markdown_reference

    print(markdown_reference() if args.markdown else json.dumps(json_schema(), indent=2), end="" if args.markdown else "\n")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from cnnzoo.deploy.evaluate import evaluate
    from cnnzoo.training.per_class import table

    result = evaluate(args.model, args.split, args.config, args.manual_dir)
    lines = [f"{result['model']} on {result['dataset']} {result['split']}:"]
    lines += [f"  {name:<12} {value:.4f}" for name, value in result["metrics"].items()]
    lines += ["per class:", *table(result["per_class"])]
    return _print(args, result, lines)


def import_model(args: argparse.Namespace) -> int:
    from cnnzoo.deploy.keras_import import import_model

    size = {"check_size": args.check_size} if args.check_size is not None else {}
    r = import_model(args.source, args.output, blocks=not args.flat, **size)
    found = (f"; {_count(len(r['stages']), 'stage')} of {_count(r['blocks'], 'block')} ("
             + ", ".join(f"{s['name']} x{s['repeat']}" for s in r["stages"]) + ")") if r["stages"] else ""
    at = f" at {'x'.join(map(str, r['checked_at'][:2]))}" if r["open"] else ""
    print(f"{r['output']}: {r['layers']} layers as {r['items']} items{found}, {r['params']:,} parameters (Keras: "
          f"{r['params_keras']:,}); same weights give outputs within {r['max_difference']:.1e}{at}; "
          f"{r['seconds']:.1f} s")
    if r["open"]:
        print("input size open (input_shape: [null, null, ...]): training needs data.preprocessing.resize")
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def pictures(args: argparse.Namespace) -> int:
    from cnnzoo.deploy.pictures import write_pictures

    for file in write_pictures(args.model, args.output, args.config, args.manual_dir, args.image):
        print(file)
    return 0


def predict(args: argparse.Namespace) -> int:
    from cnnzoo.data.image_files import IMAGE_SUFFIXES
    from cnnzoo.deploy.predict import Prediction

    if args.csv and (Path(args.csv).suffix.lower() in IMAGE_SUFFIXES or args.csv in args.images):
        raise CnnzooError(f"--csv {args.csv}: the table would overwrite that image",
                          hint=f"--csv takes the file to write, e.g. --csv out.csv {args.csv}.")
    prediction = Prediction(args.model, args.images, args.top_k, args.config)
    with _csv_writer(args.csv, prediction.k) as rows:
        results, failed = [], 0
        for r in prediction:  # streamed: a big folder shows (and writes) its results as they come
            failed += r["error"] is not None
            rows(r)
            if args.json:
                results.append(r)
            elif not args.csv:
                print(f"{r['input']}: " + (f"not predicted: {r['error']}" if r["error"] else
                                           ", ".join(f"{t['name']} {t['probability']:.1%}" for t in r["top"])))
    if args.json:
        print(json.dumps(results, indent=2))
    total = len(prediction.sources)
    where = f" (reasons in {args.csv})" if args.csv else ""
    if failed == total:
        raise CnnzooError((f"none of the {total} images could be read" if total > 1 else "the image could not be read")
                          + where)
    if args.csv or failed:
        print(f"cnnzoo: {total - failed} of {total} images predicted" + (f"; {failed} could not be read{where}"
              if failed else "") + (f"; wrote {args.csv}" if args.csv else ""), file=sys.stderr)
    return 0


@contextlib.contextmanager
def _csv_writer(path: str | None, k: int):
    """A function writing one result per row of the CSV file `path` (doing nothing without --csv)."""
    from cnnzoo.deploy.predict import csv_header, csv_row

    if path is None:
        yield lambda result: None
        return
    try:
        file = open(path, "w", newline="", encoding="utf-8")
    except OSError as exc:
        raise CnnzooError(f"cannot write {path}: {exc.strerror or exc}") from None
    with file:
        writer = csv.writer(file)
        writer.writerow(csv_header(k))
        yield lambda result: writer.writerow(csv_row(result, k))


def _print(args: argparse.Namespace, result: object, lines: list[str]) -> int:
    """Print `result` as JSON with --json, else the human-readable lines."""
    print(json.dumps(result, indent=2) if args.json else "\n".join(lines))
    return 0


def export(args: argparse.Namespace) -> int:
    from cnnzoo.deploy.export import export

    path = export(args.model, args.format, args.output, args.quantize, args.config)
    print(f"cnnzoo: wrote {path} (input: raw pixels 0-255 of any rows and cols; colour conversion, resize and "
          "preprocessing included; output: class probabilities)")
    return 0


def plot(args: argparse.Namespace) -> int:
    from cnnzoo.training.plot import plot_runs

    print(f"cnnzoo: wrote {plot_runs(args.runs, args.output, args.title)}")
    return 0


def names(args: argparse.Namespace) -> int:
    from cnnzoo import registry

    if args.kind == "models":
        return models(args)

    table = {"layers": registry.layers, "optimizers": registry.optimizers,
             "schedules": registry.schedules, "callbacks": registry.callbacks}[args.kind]()
    print("\n".join(table.names()))
    return 0


def models(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnzoo.models import zoo

    folder = Path(args.configs) if args.configs else zoo.default_folder()
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder of configs", hint="Pass the folder with --configs DIR.")
    print(zoo.HEADER)
    for row in zoo.rows(folder):
        print(zoo.format_row(row), flush=True)  # one at a time: the big ones take a second or two to build
    return 0
