# pyrun_warnings: the warning set of every pyrun target (cpp-best-practices' cmake_template style).
# -Werror only with PYRUN_WERROR: the presets, tools/test and CI turn it on; a packager's build
# (Debian's flags, a newer compiler) must not break on a warning that did not exist when we wrote
# the code.
add_library(pyrun_warnings INTERFACE)
target_compile_options(pyrun_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast
  -Woverloaded-virtual -Wcast-align -Wformat=2
  # GCC 12 reports false positives for -Wnull-dereference inside Asio.
  -Wno-null-dereference)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12: false positives on coroutine frames.
  target_compile_options(pyrun_warnings INTERFACE -Wno-mismatched-new-delete)
endif()
if(PYRUN_WERROR)
  target_compile_options(pyrun_warnings INTERFACE -Werror)
endif()
