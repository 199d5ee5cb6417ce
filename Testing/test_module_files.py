"""Static checks of the Slicer side: module files, .ui files, CMake lists, icons.

Module files import `qt`, `slicer.ScriptedLoadableModule` and `slicer.parameterNodeWrapper`, which exist
only inside Slicer, so they are read with `ast`, never imported. The in-Slicer self-tests (the `...Test`
classes) exercise the same files for real where Slicer is installed.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import struct
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("ZeroShotRegistration", "RigidDCNNRegistration", "ModalityClassifier")
COMMON = "SlicerDLRegCommon"  # the hidden module that carries SlicerDLRegLib
ISLAM_2021 = ("A deep learning based framework for the registration of three dimensional "
              "multi-modal medical images of the head")
PAPERS = {
    "ZeroShotRegistration": "Zero Shot Learning for Multi-Modal Real Time Image Registration",
    "RigidDCNNRegistration": ISLAM_2021,
    "ModalityClassifier": ISLAM_2021,
}
# Widgets that slicer.parameterNodeWrapper can bind to each field type (its guiConnectors).
BINDABLE = {
    "bool": {"QCheckBox", "QPushButton"},
    "int": {"QSpinBox", "QSlider", "QComboBox"},
    "float": {"QDoubleSpinBox", "ctkSliderWidget", "QComboBox"},
    "str": {"QLineEdit", "QTextEdit", "QComboBox"},
    "Path": {"ctkPathLineEdit", "ctkDirectoryButton"},
    "node": {"qMRMLNodeComboBox", "qMRMLSubjectHierarchyTreeView"},
}
IMPLICIT_DEFAULTS = {"bool": False, "int": 0, "float": 0.0, "str": "", "node": None}
HEAVY_IMPORTS = {"torch", "numpy", "SimpleITK", "scipy", "sklearn", "dlreg"}
GUI_IMPORTS = {"qt", "ctk", "PythonQt", "slicer.app", "slicer.ScriptedLoadableModule",
               "slicer.parameterNodeWrapper", "slicer.i18n"}
SLICER_IMPORTS = {"slicer", "vtk", "vtkmodules", "MRMLCorePython", "mrml"}
PARAMETER_NAME = "SlicerParameterName"


# ---------------------------------------------------------------------------------------------- readers


@lru_cache(maxsize=None)
def module_tree(module: str) -> ast.Module:
    path = ROOT / module / f"{module}.py"
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def module_classes(module: str) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in module_tree(module).body if isinstance(node, ast.ClassDef)}


def module_class(module: str, suffix: str) -> ast.ClassDef:
    classes = module_classes(module)
    assert module + suffix in classes, f"{module}.py defines no class {module + suffix}"
    return classes[module + suffix]


@lru_cache(maxsize=None)
def ui_root(module: str) -> ET.Element:
    return ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui").getroot()


def ui_widgets(module: str) -> dict[str, ET.Element]:
    """Every widget of the .ui by object name (what slicer.util.childWidgetVariables exposes as self.ui)."""
    return {w.get("name"): w for w in ui_root(module).iter("widget")}


def widget_property(widget: ET.Element, name: str):
    """A widget's own property value: a string, a bool, or a list of strings; None when absent."""
    for prop in widget.findall("property"):
        if prop.get("name") == name:
            value = prop[0]
            if value.tag == "stringlist":
                return [s.text for s in value.findall("string")]
            return value.text == "true" if value.tag == "bool" else value.text
    return None


def parameter_fields(module: str) -> dict[str, tuple[str, dict]]:
    """ParameterNode fields: name -> (kind: bool|int|float|str|Path|node, {annotation name: args or default})."""
    fields = {}
    for statement in module_class(module, "ParameterNode").body:
        if isinstance(statement, ast.AnnAssign):
            annotation, extras = statement.annotation, {}
            if isinstance(annotation, ast.Subscript) and getattr(annotation.value, "id", "") == "Annotated":
                annotation, *calls = annotation.slice.elts
                extras = {c.func.id: [ast.literal_eval(a) for a in c.args] for c in calls}
            name = ast.unparse(annotation).split(".")[-1]
            kind = "node" if name.startswith("vtkMRML") else name
            fields[statement.target.id] = (kind, extras)
    return fields


def metadata(module: str) -> dict[str, object]:
    """The `self.parent.<attribute> = <literal>` assignments of the module class."""
    values = {}
    for node in ast.walk(module_class(module, "")):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute):
            target = node.targets[0]
            if ast.unparse(target.value) == "self.parent":
                values[target.attr] = ast.literal_eval(node.value)
    return values


def cmake_list(text: str, variable: str) -> list[str]:
    """The items of `set(<variable> ...)`, comments removed."""
    match = re.search(rf"set\(\s*{variable}\s(.*?)\)", re.sub(r"#[^\n]*", "", text), re.S)
    assert match, f"no set({variable} ...) found"
    return match.group(1).split()


def files_under(folder: Path, pattern: str = "*") -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob(pattern)
            if p.is_file() and "__pycache__" not in p.parts}


def load_update_script():
    spec = importlib.util.spec_from_file_location("update_cmake_file_lists",
                                                  ROOT / "Utilities" / "update_cmake_file_lists.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


# ---------------------------------------------------------------------------------------------- module files


@pytest.mark.parametrize("module", MODULES)
def test_module_file_defines_the_slicer_classes(module):
    bases = {suffix: [ast.unparse(b) for b in module_class(module, suffix).bases]
             for suffix in ("", "Widget", "Logic", "Test", "ParameterNode")}
    assert bases[""] == ["ScriptedLoadableModule"]
    assert bases["Widget"] == ["ScriptedLoadableModuleWidget", "VTKObservationMixin"]
    assert bases["Logic"] == ["ScriptedLoadableModuleLogic"]
    assert bases["Test"] == ["ScriptedLoadableModuleTest"]
    decorators = [ast.unparse(d) for d in module_class(module, "ParameterNode").decorator_list]
    assert decorators == ["parameterNodeWrapper"], f"{module}ParameterNode must be a @parameterNodeWrapper"


@pytest.mark.parametrize("module", MODULES)
def test_module_metadata_is_complete(module):
    meta = metadata(module)
    for key in ("title", "helpText", "acknowledgementText"):
        assert isinstance(meta.get(key), str) and meta[key].strip(), f"{module}: empty {key}"
    assert meta.get("categories") == ["Registration"]
    assert meta.get("contributors") and all(isinstance(v, str) and v.strip() for v in meta["contributors"])
    # the shared helpers load first; PyTorch is a soft dependency (the modules load without it)
    assert meta.get("dependencies") == [COMMON], f"{module}: dependencies must be exactly [{COMMON!r}]"
    assert PAPERS[module] in " ".join(meta["acknowledgementText"].split()), f"{module} must cite its paper"


@pytest.mark.parametrize("module", MODULES)
def test_module_file_holds_no_algorithm(module):
    """Only imports and classes at the top, nothing heavy imported at load time (dlreg is imported lazily)."""
    for statement in module_tree(module).body:
        is_docstring = isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
        assert isinstance(statement, (ast.Import, ast.ImportFrom, ast.ClassDef)) or is_docstring, \
            f"{module}.py line {statement.lineno}: only imports and classes belong at module level"
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in statement.names] if isinstance(statement, ast.Import) else [statement.module]
            heavy = [n for n in names if n.split(".")[0] in HEAVY_IMPORTS]
            assert not heavy, f"{module}.py imports {heavy} at load time; import inside the method that needs it"


@pytest.mark.parametrize("module", MODULES)
def test_logic_is_a_thin_adapter(module):
    logic = module_class(module, "Logic")
    length = logic.end_lineno - logic.lineno + 1
    assert length < 100, f"{module}Logic has {length} lines: the algorithm belongs in dlreg"
    source = ast.get_source_segment((ROOT / module / f"{module}.py").read_text(encoding="utf-8"), logic)
    dialogs = re.findall(r"\w*Display\(|QMessageBox|\bqt\.", source)
    assert not dialogs, f"{module}Logic opens dialogs ({dialogs}); only the widget may, or ensureTorch(interactive)"


@pytest.mark.parametrize("module", MODULES)
def test_self_test_runs_every_test_method(module):
    test_class = module_class(module, "Test")
    methods = {f.name: f for f in test_class.body if isinstance(f, ast.FunctionDef)}
    tests = {name for name in methods if name.startswith("test_")}
    assert tests, f"{module}Test has no test_ method"
    called = {n.func.attr for n in ast.walk(methods["runTest"])
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert tests <= called, f"{module}Test.runTest does not run {sorted(tests - called)}"


@pytest.mark.parametrize("module", MODULES)
def test_module_folder_has_no_loose_python_files(module):
    """Slicer takes every .py file at the top of a module folder for a module: helpers live in packages."""
    assert sorted(p.name for p in (ROOT / module).glob("*.py")) == [f"{module}.py"]


# ---------------------------------------------------------------------------------------------- .ui files


@pytest.mark.parametrize("module", MODULES)
def test_ui_file_is_a_designer_form_for_the_module(module):
    root = ui_root(module)
    assert root.tag == "ui" and root.findtext("class") == module
    top = root.find("widget")
    assert (top.get("class"), top.get("name")) == ("qMRMLWidget", module)
    source = (ROOT / module / f"{module}.py").read_text(encoding="utf-8")
    assert f'self.resourcePath("UI/{module}.ui")' in source, "the widget must load its own .ui"


@pytest.mark.parametrize("module", MODULES)
def test_widget_uses_only_names_of_the_ui(module):
    used = {n.attr for n in ast.walk(module_class(module, "Widget"))
            if isinstance(n, ast.Attribute) and ast.unparse(n.value) == "self.ui"}
    assert used, f"{module}Widget uses no self.ui widget"
    missing = used - set(ui_widgets(module))
    assert not missing, f"{module}Widget uses self.ui.{sorted(missing)}, absent from {module}.ui"


@pytest.mark.parametrize("module", MODULES)
def test_ui_has_the_standard_controls(module):
    classes = {w.get("class") for w in ui_widgets(module).values()}
    assert {"ctkCollapsibleButton", "qMRMLNodeComboBox", "QProgressBar", "QTextEdit"} <= classes
    assert {"applyButton", "cancelButton", "progressBar"} <= set(ui_widgets(module))


@pytest.mark.parametrize("module", MODULES)
def test_ui_parameter_names_bind_to_fields(module):
    """Every SlicerParameterName names a field, once, on a widget the wrapper can bind to that type."""
    fields = parameter_fields(module)
    bound = [(name, w) for name, w in ui_widgets(module).items() if widget_property(w, PARAMETER_NAME)]
    assert bound, f"{module}.ui binds no widget to the parameter node"
    parameters = [widget_property(w, PARAMETER_NAME) for _, w in bound]
    assert len(parameters) == len(set(parameters)), f"{module}.ui binds a field twice: {parameters}"
    for name, widget in bound:
        parameter, widget_class = widget_property(widget, PARAMETER_NAME), widget.get("class")
        assert parameter in fields, f"{module}.ui: {name} is bound to '{parameter}', not a ParameterNode field"
        kind, extras = fields[parameter]
        assert widget_class in BINDABLE[kind], f"{module}.ui: {widget_class} {name} cannot show a {kind}"
        if widget_class == "QComboBox":
            assert "Choice" in extras, f"{module}: {parameter} on a combo box needs Choice([...])"
        if widget_class in ("ctkSliderWidget", "QSlider"):
            assert "WithinRange" in extras, f"{module}: {parameter} on a slider needs WithinRange(a, b)"
        if kind == "node":
            node_class = ast.unparse(next(s.annotation for s in module_class(module, "ParameterNode").body
                                          if isinstance(s, ast.AnnAssign) and s.target.id == parameter))
            assert widget_property(widget, "nodeTypes") == [node_class], f"{module}.ui: {name} nodeTypes"


@pytest.mark.parametrize("module", MODULES)
def test_parameter_defaults_pass_their_validators(module):
    """The wrapper writes each default through the field's validators when the node is created."""
    for field, (kind, extras) in parameter_fields(module).items():
        default = extras["Default"][0] if "Default" in extras else IMPLICIT_DEFAULTS.get(kind)
        if "Choice" in extras:
            assert default in extras["Choice"][0], f"{module}: {field} default {default!r} is not a choice"
        if "WithinRange" in extras:
            low, high = extras["WithinRange"]
            assert low <= default <= high, f"{module}: {field} default {default!r} outside [{low}, {high}]"
        if "Minimum" in extras:
            assert default >= extras["Minimum"][0], f"{module}: {field} default below its minimum"


@pytest.mark.parametrize("module", MODULES)
def test_mrml_widgets_receive_the_scene(module):
    """Each qMRML widget gets the scene through the form's mrmlSceneChanged signal, or it stays empty."""
    receivers = {c.findtext("receiver") for c in ui_root(module).iter("connection")
                 if c.findtext("sender") == module and c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
                 and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    mrml = {name for name, w in ui_widgets(module).items() if w.get("class").startswith("qMRML") and name != module}
    assert mrml <= receivers, f"{module}.ui: no scene connection for {sorted(mrml - receivers)}"


@pytest.mark.parametrize("module", MODULES)
def test_custom_widgets_are_declared(module):
    declared = {c.findtext("class") for c in ui_root(module).iter("customwidget")}
    used = {w.get("class") for w in ui_widgets(module).values() if not w.get("class").startswith("Q")}
    assert used <= declared, f"{module}.ui: undeclared custom widgets {sorted(used - declared)}"


# ---------------------------------------------------------------------------------------------- CMake


def test_extension_cmake_has_metadata_and_parts():
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    for key in ("HOMEPAGE", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS"):
        assert re.search(rf'set\(EXTENSION_{key} "[^"]+"\)', text), f"EXTENSION_{key} missing or empty"
    assert 'set(EXTENSION_CATEGORY "Registration")' in text
    assert re.search(r"set\(EXTENSION_DEPENDS\s+\"?PyTorch\"?\)", text)
    parts = re.findall(r"add_subdirectory\((\w+)\)", text)
    assert parts == ["dlreg", COMMON, *MODULES]
    assert all((ROOT / part / "CMakeLists.txt").is_file() for part in parts)
    for line in ("find_package(Slicer 5.4 REQUIRED)", "include(${Slicer_USE_FILE})",
                 "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert line in text


def module_call(folder: str) -> tuple[bool, list[str]]:
    """(HIDDEN, extra scripts) of a module folder's `slicerdlreg_scripted_module(...)` call."""
    text = re.sub(r"#[^\n]*", "", (ROOT / folder / "CMakeLists.txt").read_text(encoding="utf-8"))
    match = re.search(rf"slicerdlreg_scripted_module\(\s*{folder}\b(.*?)\)", text, re.S)
    assert match, f"{folder}/CMakeLists.txt must call slicerdlreg_scripted_module({folder} ...)"
    words = match.group(1).split()
    extra = words[words.index("SCRIPTS") + 1:] if "SCRIPTS" in words else []
    return "HIDDEN" in words, extra


@pytest.mark.parametrize("module", (*MODULES, COMMON))
def test_module_cmake_lists_every_file(module):
    hidden, extra = module_call(module)
    folder = ROOT / module
    assert hidden == (module == COMMON), f"{module}: only the common module is hidden (no .ui, no self-test)"
    scripts = {f"{module}.py", *extra}
    assert scripts == files_under(folder, "*.py"), f"{module}/CMakeLists.txt SCRIPTS differ from the .py files on disk"
    resources = {f"Resources/Icons/{module}.png"} | (set() if hidden else {f"Resources/UI/{module}.ui"})
    assert resources == {f"Resources/{p}" for p in files_under(folder / "Resources")}


def test_module_function_builds_tests_and_resources():
    text = (ROOT / "CMake" / "SlicerDLRegModule.cmake").read_text(encoding="utf-8")
    assert re.search(r"slicerMacroBuildScriptedModule\(.*\$\{generic_tests\}.*?\)", text, re.S)
    assert "set(generic_tests WITH_GENERIC_TESTS)" in text
    assert re.search(r"if\(BUILD_TESTING AND NOT MODULE_HIDDEN\)\s*slicer_add_python_unittest\(SCRIPT \$\{name\}\.py\)",
                     text)
    assert "include(${CMAKE_CURRENT_SOURCE_DIR}/CMake/SlicerDLRegModule.cmake)" in (ROOT / "CMakeLists.txt").read_text()


def test_dlreg_cmake_lists_every_file():
    text = (ROOT / "dlreg" / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts, resources = set(cmake_list(text, "DLREG_PYTHON_SCRIPTS")), set(cmake_list(text, "DLREG_PYTHON_RESOURCES"))
    training = set(cmake_list(text, "DLREG_TRAINING_SCRIPTS"))
    every = {f"dlreg/{p}" for p in files_under(ROOT / "dlreg", "*.py")}
    assert scripts | training == every and not scripts & training, \
        "dlreg/CMakeLists.txt is stale: run python Utilities/update_cmake_file_lists.py"
    assert training == {p for p in every if p.startswith("dlreg/training/")}, "training is installed apart"
    models = {f"dlreg/models/{p.name}" for p in (ROOT / "dlreg" / "models").glob("*")
              if p.suffix in (".pt", ".npz", ".json")}
    samples = {f"dlreg/sampledata/{p.name}" for p in (ROOT / "dlreg" / "sampledata").glob("*.nrrd")}
    assert models | samples <= resources, f"not installed: {sorted(models | samples - resources)}"
    assert all((ROOT / item).is_file() for item in scripts | training | resources), "a listed file is missing"
    assert load_update_script().generate() == text, "run python Utilities/update_cmake_file_lists.py"
    for argument in ("SOURCE_DIR ${PROJECT_SOURCE_DIR}", "NO_INSTALL_SUBDIR",
                     "DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}",
                     "INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}"):
        assert argument in text, f"ctkMacroCompilePythonScript needs {argument} for the dlreg/... paths"


# ---------------------------------------------------------------------------------------------- dlreg layering


def imported_names(tree: ast.Module) -> set[str]:
    """Modules imported anywhere in a file, with `from a import b` also giving `a.b`; plus `slicer.app` uses."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Attribute) and ast.unparse(node) == "slicer.app":
            names.add("slicer.app")
    return names


DLREG_FILES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "dlreg").rglob("*.py")
                     if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", DLREG_FILES)
def test_dlreg_imports_point_downwards(path):
    names = imported_names(ast.parse((ROOT / path).read_text(encoding="utf-8")))
    gui = {n for n in names if any(n == g or n.startswith(g + ".") for g in GUI_IMPORTS)}
    assert not gui, f"{path} imports {sorted(gui)}: no GUI or application code under dlreg/"
    if not path.startswith("dlreg/mrml/"):
        mrml = {n for n in names if n.split(".")[0] in SLICER_IMPORTS}
        assert not mrml, f"{path} imports {sorted(mrml)}: only dlreg/mrml talks to Slicer"


# ---------------------------------------------------------------------------------------------- icons


ICONS = [f"{m}/Resources/Icons/{m}.png" for m in (*MODULES, COMMON)] + ["Resources/Icons/SlicerDLReg.png"]


@pytest.mark.parametrize("path", ICONS)
def test_icon_is_a_128_pixel_png(path):
    data = (ROOT / path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    assert struct.unpack(">II", data[16:24]) == (128, 128)
