"""The Slicer layer a clinician touches, checked where each rule lives.

Static checks of the module files (they import Slicer's application classes, so they are read
with `ast`): the parameter nodes mirror dlreg's options objects field for field, paths are kept
in the parameter node, the widgets run work in a background process and keep their actions
disabled while it runs, the console Logic shows nothing unless asked, and the shared helpers
live in the hidden SlicerDLRegCommon module. The decisions behind the buttons and the
background runs are tested on a real MRML scene in test_mrml_panel.py.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import typing

import pytest
from test_module_files import (
    COMMON,
    IMPLICIT_DEFAULTS,
    MODULES,
    ROOT,
    module_class,
    module_tree,
    parameter_fields,
    ui_widgets,
    widget_property,
)

from dlreg.modality.options import ModalityOptions
from dlreg.options import OptionsError, parameter_name
from dlreg.rigid3d.options import RigidOptions
from dlreg.zeroshot.options import ZeroShotOptions

OPTIONS = {"ZeroShotRegistration": ZeroShotOptions, "RigidDCNNRegistration": RigidOptions,
           "ModalityClassifier": ModalityOptions}
ACTION_BUTTONS = {"applyButton", "trainButton", "orderButton"}
PATH_PROPERTY = "DLRegPathParameter"


def kind_of(options_class, field: dataclasses.Field) -> str:
    hint = typing.get_type_hints(options_class)[field.name]
    base = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return base[0].__name__


def functions(cls: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef)}


@pytest.mark.parametrize("module", MODULES)
def test_parameter_node_mirrors_the_options(module):
    """One definition of each option: the parameter node declares the same fields (camelCase), types,
    defaults, choices and ranges as dlreg's options class; a GUI may offer a subset of free-text choices."""
    options_class, fields = OPTIONS[module], parameter_fields(module)
    for field in dataclasses.fields(options_class):
        name, meta = parameter_name(field.name), field.metadata
        assert name in fields, f"{module}ParameterNode lacks {name} ({options_class.__name__}.{field.name})"
        kind, extras = fields[name]
        assert kind == kind_of(options_class, field), f"{module}: {name} is {kind}"
        default = extras["Default"][0] if "Default" in extras else IMPLICIT_DEFAULTS[kind]
        assert default == ("" if field.default is None else field.default), f"{module}: {name} default {default!r}"
        if meta["choices"]:
            assert extras.get("Choice") == [list(meta["choices"])], f"{module}: {name} choices differ"
        for choice in extras.get("Choice", [[]])[0]:
            options_class(**{field.name: choice})  # a GUI choice the options accept
        if meta["minimum"] is not None:
            assert extras.get("WithinRange") == [meta["minimum"], meta["maximum"]], f"{module}: {name} range"


def test_a_gui_choice_the_options_refuse_fails_the_mirror_check():
    with pytest.raises(OptionsError, match="device"):
        ZeroShotOptions(device="cuda:x")  # what the loop above would raise for a bad combo-box entry
    with pytest.raises(OptionsError, match="n_uncertainty"):
        RigidOptions(n_uncertainty=65)


@pytest.mark.parametrize("module", MODULES)
def test_paths_live_in_the_parameter_node_as_text(module):
    """Weights and training folders are `str` parameters (empty: the bundled default, never the working
    directory), shown in ctkPathLineEdit widgets that name them with DLRegPathParameter."""
    fields = parameter_fields(module)
    bound = {widget_property(w, PATH_PROPERTY): w.get("class") for w in ui_widgets(module).values()
             if widget_property(w, PATH_PROPERTY)}
    assert bound, f"{module}.ui has no path field"
    for name, widget_class in bound.items():
        assert widget_class == "ctkPathLineEdit" and fields[name][0] == "str" and "Default" not in fields[name][1]
    paths = {parameter_name(f.name) for f in dataclasses.fields(OPTIONS[module]) if f.metadata["path"]}
    assert paths <= set(bound), f"{module}.ui shows no widget for {sorted(paths - set(bound))}"
    assert "Path" not in {kind for kind, _ in fields.values()}, "a pathlib.Path parameter reads '.' when empty"
    classes = {w.get("class") for w in ui_widgets(module).values()}
    assert "ctkDirectoryButton" not in classes, "a directory button always shows a folder (the working one)"


@pytest.mark.parametrize("module", MODULES)
def test_widget_runs_work_in_a_background_process(module):
    widget = module_class(module, "Widget")
    source = ast.unparse(widget)
    assert not re.search(r"self\.logic\.(process|classify|order|train)\(", source), \
        f"{module}Widget calls the Logic in the GUI thread; start a dlreg.mrml.jobs job instead"
    handlers = [f for name, f in functions(widget).items() if re.fullmatch(r"on\w+Button", name)]
    assert handlers
    for handler in handlers:
        text = ast.unparse(handler)
        assert "self._run.start(" in text and "dlreg.mrml.jobs" in text, f"{module}.{handler.name}"


@pytest.mark.parametrize("module", MODULES)
def test_actions_stay_disabled_while_a_run_is_on(module):
    """Whatever sets an action button's `enabled` asks dlreg.mrml.panel, passing whether a run is on."""
    for function in functions(module_class(module, "Widget")).values():
        text = ast.unparse(function)
        if any(f"self.ui.{button}.enabled" in text for button in ACTION_BUTTONS) and "_setBusy" not in text:
            assert "from dlreg.mrml.panel import" in text and "running" in text, f"{module}.{function.name}"
            assert "self._run.running" in text, f"{module}.{function.name} must read the run's state"


@pytest.mark.parametrize("module", MODULES)
def test_closing_the_scene_cancels_a_run(module):
    setup = ast.unparse(functions(module_class(module, "Widget"))["setup"])
    assert "StartCloseEvent" in setup and "self._run.cancel()" in setup
    assert "self._run.cancel()" in ast.unparse(functions(module_class(module, "Widget"))["cleanup"])


@pytest.mark.parametrize("module", MODULES)
def test_console_logic_shows_nothing_unless_asked(module):
    logic = functions(module_class(module, "Logic"))
    for name in ("process", "classify", "order"):
        if name in logic:
            args = logic[name].args
            defaults = dict(zip([a.arg for a in args.kwonlyargs], args.kw_defaults))
            assert "interactive" in defaults and ast.literal_eval(defaults["interactive"]) is False
            if "show" in defaults:
                assert not ast.literal_eval(defaults["show"]), f"{module}Logic.{name} shows by default"
            assert "show_overlay" not in ast.unparse(logic[name])


def test_the_self_test_expects_what_the_model_card_records():
    source = ast.unparse(module_class("ModalityClassifier", "Test"))
    assert "bundled_sample_expectations()" in source
    assert not re.search(r"\[\s*'MR-", source), "expected labels are read from the card, not written here"


def test_shared_helpers_live_in_the_hidden_common_module():
    folder = ROOT / COMMON
    module = ast.unparse(module_tree(COMMON))
    assert "self.parent.hidden = True" in module and "MINIMUM_SLICER = (5, 4)" in module
    assert sorted(p.name for p in folder.glob("*.py")) == [f"{COMMON}.py"]
    for name in MODULES:
        assert not (ROOT / name / "SlicerDLRegLib").exists()
        top = [s for s in module_tree(name).body if isinstance(s, (ast.Import, ast.ImportFrom))]
        assert not any("SlicerDLRegLib" in ast.unparse(s) for s in top), f"{name} imports SlicerDLRegLib at load"


def test_no_module_requires_the_pytorch_extension_to_load():
    for name in (*MODULES, COMMON):
        assert "PyTorchUtils" not in ast.unparse(module_class(name, "")), name
    helpers = (ROOT / COMMON / "SlicerDLRegLib" / "dependencies.py").read_text(encoding="utf-8")
    assert "import PyTorchUtils" in helpers and "confirmOkCancelDisplay" in helpers
