"""The command line's subcommands and options (argparse); each subcommand's handler is in `commands.py`."""

from __future__ import annotations

import argparse

from cnnzoo.cli import commands


def _config_arguments(parser: argparse.ArgumentParser, overrides_help: str = "dotted overrides, e.g. train.epochs=3"):
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=overrides_help)


def _trained_model_arguments(parser: argparse.ArgumentParser, exports: bool = False) -> None:
    parser.add_argument("model", metavar="RUN_DIR_OR_MODEL", help="a run directory, or a .keras file with --config"
                        + (", or an .onnx or .tflite file `cnnzoo export` wrote" if exports else ""))
    parser.add_argument("--config", help="the config the model was trained with (default: the run's)")


def _manual_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manual-dir", help="folder with the dataset's original files (or .npz arrays), to prepare it offline")


def parser() -> argparse.ArgumentParser:
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
    train.set_defaults(handler=commands.train)

    validate = sub.add_parser(
        "validate", help="check a config for this machine and print the plan, without data or training",
        description="Check a config as `train` would, downloading and writing nothing: keys, types, layers, "
        "shapes, the dataset's metadata and availability, strategy, precision, optimizer, loss, callbacks.",
    )
    _config_arguments(validate)
    _manual_dir_argument(validate)
    validate.set_defaults(handler=commands.validate)

    sweep = sub.add_parser(
        "sweep", help="train a grid of overrides, one run each",
        description="Train every combination of the config's `sweep:` grid and --grid options, one after "
        "the other: the grid case of `cnnzoo search`, with its trials.csv/.md, best.yaml, plots and HParams tab, "
        "plus summary.json/.md. Run again to finish an interrupted sweep.",
    )
    _config_arguments(sweep, "overrides for every run")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                       help="values to try for one key (repeat for more keys)")
    sweep.add_argument("--output-dir", help="sweep folder (default: runs/sweep-<model.name>-<settings hash>)")
    _manual_dir_argument(sweep)
    sweep.set_defaults(handler=commands.sweep)

    search = sub.add_parser(
        "search", help="search the config's `search:` space with Optuna, one run per trial",
        description="Run trials of the config's `search:` section (Optuna: TPE, random or grid; bad trials pruned "
        "after an epoch), one run folder each; write trials.csv/.md, best.yaml, HParams and plots. Run again to "
        "go on with an interrupted search; give several processes the same --storage to share one study.",
    )
    _config_arguments(search, "overrides for every trial")
    search.add_argument("--trials", type=int, metavar="N", help="trials in all (default: search.trials)")
    search.add_argument("--output-dir", help="search folder (default: runs/search-<model.name>-<settings hash>)")
    search.add_argument("--storage", metavar="URL", help="Optuna storage shared by several processes, e.g. "
                        "sqlite:///runs/s/study.db or postgresql://user:pass@host/db (default: DIR/study.db)")
    _manual_dir_argument(search)
    search.set_defaults(handler=commands.search)

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
    inspect.set_defaults(handler=commands.inspect)

    schema = sub.add_parser("schema", help="print the JSON Schema of config files (for editors)",
                            description="Print the JSON Schema of cnnzoo config files, e.g. "
                            "`cnnzoo schema > cnnzoo.schema.json` for the YAML language server.")
    schema.add_argument("--markdown", action="store_true", help="the config reference in Markdown (docs/config.md)")
    schema.set_defaults(handler=commands.schema)

    evaluate = sub.add_parser("evaluate", help="metrics of a trained model on a split of its dataset",
                              description="Evaluate a run's model (or a .keras file with --config) on its test split.")
    _trained_model_arguments(evaluate)
    evaluate.add_argument("--split", help="TFDS split (default: the run's test split), e.g. train[:10%%]")
    _manual_dir_argument(evaluate)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=commands.evaluate)

    importer = sub.add_parser(
        "import", help="write a config for an existing Keras model (.keras, JSON, .h5, keras.applications.NAME)",
        description="Write a cnnzoo config that builds the same graph as a Keras model: one named item per "
        "layer, `inputs:` where a layer does not take the one before it, and repeated structure as blocks "
        "used by stages. The config is then built, the weights copied over and the outputs compared, and the "
        "largest difference printed.")
    importer.add_argument("source", help="a .keras file, a model.to_json() file, a Keras 2 .h5 file, "
                          "keras.applications.NAME (or NAME(include_top=False, ...): keyword arguments with literal values), "
                          "or package.module:function returning a model")
    importer.add_argument("--output", "-o", required=True, metavar="CONFIG", help="the YAML file to write")
    importer.add_argument("--flat", action="store_true", help="one item per layer: no blocks or stages")
    importer.add_argument("--check-size", type=int, metavar="N",
                          help="a model whose input size is open (None rows and cols) keeps it open in the config; "
                          "its outputs are compared on NxN images (default 224)")
    importer.set_defaults(handler=commands.import_model)

    pictures = sub.add_parser(
        "pictures", help="a run's filters, feature maps, confusion matrix, mistakes and Grad-CAM as PNG files",
        description="Write the pictures TensorBoard shows in its Images tab for a run, from the run's saved model: "
        "first-layer filters, feature maps of a few fixed test images, the validation confusion matrix, the "
        "most confidently wrong validation images and the Grad-CAM heat maps of both. With --image, the Grad-CAM "
        "of your own images instead, for their two likeliest classes.")
    _trained_model_arguments(pictures)
    pictures.add_argument("--output", "-o", metavar="DIR", help="folder for the PNG files (default: RUN/pictures)")
    pictures.add_argument("--image", action="append", metavar="PATH",
                          help="an image file or folder (any size and colour; the run's preprocessing): write its "
                          "Grad-CAM as grad_cam-NAME.png; repeatable")
    _manual_dir_argument(pictures)
    pictures.set_defaults(handler=commands.pictures)

    predict = sub.add_parser(
        "predict", help="top-k classes for images or folders of them, with the run's preprocessing",
        description="Classify image files (JPEG, PNG, BMP, GIF; any size and colour: converted and resized as "
        "training does), every image in folders (recursively; hidden files skipped) and .npy arrays of raw pixels "
        "(0-255). A file that cannot be read is reported with its reason and does not stop the others.")
    _trained_model_arguments(predict, exports=True)
    predict.add_argument("images", nargs="+", metavar="PATH", help="image files, folders of images, .npy arrays")
    predict.add_argument("--top-k", type=int, default=3, metavar="K", help="classes per image (default: 3)")
    predict.add_argument("--csv", metavar="FILE", help="write one row per image: "
                         "path,class_1,probability_1,...,class_K,probability_K,error")
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(handler=commands.predict)

    export = sub.add_parser("export", help="the trained model with its preprocessing, for deployment",
                            description="Export a run's model with its preprocessing built in: it takes raw "
                            "pixels 0-255 of any rows and cols (3 channels for runs on your own photos, converted "
                            "to the model's colour), resizes them and returns class probabilities.")
    _trained_model_arguments(export)
    export.add_argument("--format", default="keras", choices=["keras", "savedmodel", "tflite", "onnx"],
                        help="onnx needs the extra: pip install 'cnnzoo[onnx]'")
    export.add_argument("--quantize", action="store_true", help="tflite: int8 weights (dynamic-range quantisation)")
    export.add_argument("--output", "-o", help="where to write (default: RUN_DIR/export/...)")
    export.set_defaults(handler=commands.export)

    plot = sub.add_parser("plot", help="save loss/error curves of runs as a PNG",
                          description="Plot loss and error per epoch of one or more completed runs, overlaid.")
    plot.add_argument("runs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("--output", "-o", default="curves.png", help="PNG file to write (default: curves.png)")
    plot.add_argument("--title")
    plot.set_defaults(handler=commands.plot)

    listing = sub.add_parser("list", help="list the names a config may use, or the zoo's models",
                             description="List the names a config may use (Keras' layers, optimizers, schedules, "
                             "callbacks), or `models`: every shipped config's model with its parameters and MACs.")
    listing.add_argument("kind", choices=["layers", "optimizers", "schedules", "callbacks", "models"])
    listing.add_argument("--configs", help="with models: the folder of configs (default: ./configs, else the "
                         "checkout's)")
    listing.set_defaults(handler=commands.names)
    return parser
