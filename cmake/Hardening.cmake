# pyrun_options: language level, definitions and sanitizers for every pyrun target.
# pyrun_hardening: Debian's hardening (dpkg-buildflags hardening=+all), so that hardening-check
# passes on the installed programs whatever the build type: every library and program faces the
# network or untrusted input. The tests link pyrun_options alone (they face neither).
include(CheckCXXCompilerFlag)
include(CheckPIESupported)

add_library(pyrun_options INTERFACE)
target_compile_features(pyrun_options INTERFACE cxx_std_20)
target_compile_definitions(pyrun_options INTERFACE BOOST_ASIO_NO_DEPRECATED)

check_pie_supported(LANGUAGES CXX)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)

if(PYRUN_SANITIZE)
  target_compile_options(pyrun_options INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(pyrun_options INTERFACE -fsanitize=address,undefined)
endif()

add_library(pyrun_hardening INTERFACE)
foreach(flag -fstack-protector-strong -fstack-clash-protection -fcf-protection)
  string(MAKE_C_IDENTIFIER "PYRUN_HAS${flag}" var)
  check_cxx_compiler_flag(${flag} ${var})
  if(${var})
    target_compile_options(pyrun_hardening INTERFACE ${flag})
  endif()
endforeach()

# _FORTIFY_SOURCE needs optimisation, and ASan replaces the checked functions itself. A packager's
# flags (dpkg-buildflags puts -D_FORTIFY_SOURCE=2 in CXXFLAGS) win: defining it twice would warn.
# Level 3 needs GCC 12 or clang 9 with glibc 2.34.
if(NOT PYRUN_SANITIZE AND NOT "${CMAKE_CXX_FLAGS} ${CMAKE_CPPFLAGS}" MATCHES "_FORTIFY_SOURCE")
  set(fortify 2)
  if((CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12)
     OR (CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 9))
    set(fortify 3)
  endif()
  set(optimized "$<CONFIG:Release,RelWithDebInfo,MinSizeRel>")
  target_compile_options(pyrun_hardening INTERFACE
    "$<${optimized}:-U_FORTIFY_SOURCE>" "$<${optimized}:-D_FORTIFY_SOURCE=${fortify}>")
endif()

# Full RELRO and immediate binding: the GOT is read-only once the program runs.
target_link_options(pyrun_hardening INTERFACE LINKER:-z,relro LINKER:-z,now)
