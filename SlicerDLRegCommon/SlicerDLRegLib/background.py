"""A module panel's run in a background process: QProcess, progress bar, Cancel, busy widgets.

`dlreg.mrml.jobs.JobRunner` holds the logic (input steps, progress lines, result, output
steps); this file is the Qt part: a QProcess for the child, zero-delay timers for the steps
(the event loop repaints between them), the progress bar and the Cancel button. While a run
is on, `running` is True: the panel keeps Apply (and the other actions) disabled whatever the
parameters do, and Cancel is the only action.
"""

from typing import Callable, Sequence

import qt
import slicer


class BackgroundRun:
    """One panel's background runs (one at a time)."""

    def __init__(self, progressBar, cancelButton, busyWidgets: Sequence, onStateChanged: Callable[[], None]) -> None:
        self._bar = progressBar
        self._cancelButton = cancelButton
        self._busyWidgets = list(busyWidgets)
        self._onStateChanged = onStateChanged
        self._runner = None
        self._process = None
        cancelButton.enabled = False
        cancelButton.connect("clicked(bool)", self.cancel)

    @property
    def running(self) -> bool:
        return self._runner is not None and self._runner.running

    def start(self, job, done: Callable[[object], None], title: str = "Running") -> None:
        """Run a `dlreg.mrml.jobs.NodeJob`; `done(result)` gets its result on the main thread."""
        from dlreg.mrml.jobs import JobRunner

        if self.running:
            raise RuntimeError("a run is already in progress: wait for it or press Cancel")
        self._title = title
        self._runner = JobRunner(job, self, self._progress, lambda result: self._finish(done, result), self._fail)
        self._setBusy(True)
        self._runner.start()

    def cancel(self) -> None:
        """Stop the run now; nothing is added to the scene."""
        if self.running:
            self._runner.cancel()
            self._bar.format = "Cancelled"
            self._setBusy(False)

    # JobHost -------------------------------------------------------------------------------
    def defer(self, step: Callable[[], None]) -> None:
        qt.QTimer.singleShot(0, step)

    def start_process(self, command: list, env: dict, cwd: str) -> None:
        self._process = qt.QProcess()
        environment = qt.QProcessEnvironment()
        for key, value in env.items():
            environment.insert(key, value)
        self._process.setProcessEnvironment(environment)
        self._process.setWorkingDirectory(cwd)
        self._process.connect("readyReadStandardOutput()", self._readStdout)
        self._process.connect("readyReadStandardError()", self._readStderr)
        self._process.connect("finished(int,QProcess::ExitStatus)", self._processFinished)
        self._process.start(command[0], command[1:])

    def kill_process(self) -> None:
        if self._process is not None and self._process.state() != qt.QProcess.NotRunning:
            self._process.kill()

    # internals -------------------------------------------------------------------------------
    def _readStdout(self) -> None:
        self._runner.stdout(bytes(self._process.readAllStandardOutput().data()))

    def _readStderr(self) -> None:
        self._runner.stderr(bytes(self._process.readAllStandardError().data()))

    def _processFinished(self, exitCode, exitStatus) -> None:
        self._readStdout()
        self._readStderr()
        self._runner.finished(int(exitCode) if exitStatus == qt.QProcess.NormalExit else -1)

    def _progress(self, fraction: float, message: str) -> None:
        self._bar.value = round(100 * fraction)
        self._bar.format = f"{message}  %p%"

    def _finish(self, done: Callable[[object], None], result) -> None:
        self._bar.value = 100
        self._bar.format = "Done"
        self._setBusy(False)
        with slicer.util.tryWithErrorDisplay(f"{self._title}: the results could not be shown."):
            done(result)

    def _fail(self, message: str) -> None:
        self._bar.format = "Failed"
        self._setBusy(False)
        slicer.util.errorDisplay(f"{self._title} failed: {message}")

    def _setBusy(self, busy: bool) -> None:
        self._cancelButton.enabled = busy
        for widget in self._busyWidgets:
            widget.enabled = not busy
        self._onStateChanged()
