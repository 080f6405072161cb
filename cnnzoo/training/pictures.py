"""The `train.pictures` callback: what the network learned, in TensorBoard's Images tab, as it trains."""

from __future__ import annotations

import keras

from cnnzoo.training.run_dir import RunDir

RUN = "pictures"  # the TensorBoard run (logs/pictures) the images are written to


class LearnedPictures(keras.callbacks.Callback):
    """Every `every` epochs (and after the last), writes `Pictures.render` to logs/pictures at step = epoch,
    the step Keras' TensorBoard callback gives the epoch's scalars.

    With a `recorder` (one device), the confusion matrix and mistakes are recorded during Keras'
    validation pass; otherwise (or if the step functions were traced before this callback could
    hook them) the validation split is predicted once more.
    """

    def __init__(self, run: RunDir, pictures, validation, every: int, epochs: int, recorder=None):
        super().__init__()
        self.run, self.pictures, self.validation = run, pictures, validation
        self.every, self.epochs, self.recorder = every, epochs, recorder
        self._writer = self._undo = None

    def on_train_begin(self, logs=None):
        if self.recorder is not None and self.validation is not None:
            from cnnzoo.pictures.record import recording

            self._undo = recording(self.model, self.recorder)

    def on_test_begin(self, logs=None):
        if self.recorder is not None:
            self.recorder.reset()
            self.recorder.active = True  # Keras traces the validation step after this, at its first call

    def on_test_end(self, logs=None):
        if self.recorder is not None:
            self.recorder.active = False

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every and epoch + 1 != self.epochs:
            return
        import tensorflow as tf

        recorded = self.recorder.read() if self.recorder is not None and self.validation is not None else None
        if recorded is not None and not recorded[0].sum():
            recorded = None  # the validation pass did not go through the hook
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.run.logs / RUN))
        with self._writer.as_default(step=epoch):
            for tag, (picture, description) in self.pictures.render(self.validation, recorded).items():
                tf.summary.image(tag, picture[None], description=description)
        self._writer.flush()

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        """Unpatch the model and close the writer: at the end of training, and (Keras skips
        on_train_end on an exception) from the trainer's `finally`."""
        if self._undo is not None:
            self._undo()
            self._undo = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def picture_callbacks(planned, data, run: RunDir, log) -> list:
    """The callback a run's plan asks for (none when pictures are off), saying once what is skipped."""
    from cnnzoo.models.compile import outputs_logits
    from cnnzoo.pictures.learned import Pictures

    settings = planned.config.train.pictures
    if not planned.pictures[0]:
        return []
    logits = outputs_logits(planned.config)
    pictures = Pictures.of_run(planned.model, settings, data, planned.config.runtime.seed or 0, logits)
    every = "every epoch" if settings.every_epochs == 1 else f"every {settings.every_epochs} epochs"
    log(f"cnnzoo: pictures {every} in TensorBoard's Images tab (run `{RUN}`): filters, feature maps, confusion "
        "matrix, mistakes" + (", Grad-CAM" if pictures.cam is not None else "") + "; `train.pictures: false` turns them off")
    for skipped in (pictures.skipped(), data.validation is None and "no validation split: no confusion matrix "
                    "or mistakes are drawn"):
        if skipped:
            log(f"cnnzoo: pictures: {skipped}")
    recorder = None
    if planned.strategy.kind == "default":  # one device: the validation pass records what the pictures need
        from cnnzoo.pictures.record import Recorder

        recorder = Recorder(data.num_classes, settings.mistakes, tuple(data.image_shape), logits)
    return [LearnedPictures(run, pictures, data.validation, settings.every_epochs, planned.config.train.epochs,
                            recorder)]
