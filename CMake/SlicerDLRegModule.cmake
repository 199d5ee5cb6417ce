#-----------------------------------------------------------------------------
# slicerdlreg_scripted_module(<name> [HIDDEN] [SCRIPTS <extra .py files>...])
#
# One scripted module of the extension from its folder: <name>.py (+ the extra scripts),
# Resources/Icons/<name>.png and, unless HIDDEN, Resources/UI/<name>.ui, Slicer's generic tests
# and the module's self-test (<name>Test, run inside Slicer with --testing).
function(slicerdlreg_scripted_module name)
  cmake_parse_arguments(MODULE "HIDDEN" "" "SCRIPTS" ${ARGN})
  set(scripts ${name}.py ${MODULE_SCRIPTS})
  set(resources Resources/Icons/${name}.png)
  set(generic_tests)
  if(NOT MODULE_HIDDEN)
    list(APPEND resources Resources/UI/${name}.ui)
    set(generic_tests WITH_GENERIC_TESTS)
  endif()
  slicerMacroBuildScriptedModule(
    NAME ${name}
    SCRIPTS ${scripts}
    RESOURCES ${resources}
    ${generic_tests}
    )
  if(BUILD_TESTING AND NOT MODULE_HIDDEN)
    slicer_add_python_unittest(SCRIPT ${name}.py)
  endif()
endfunction()
