# check_pure_c.cmake: fails when a plugin needs the C++ runtime (libstdc++ in its NEEDED entries).
#
#   cmake -DPLUGIN=<path/to/echo_c.so> -DREADELF=<readelf> -P check_pure_c.cmake
cmake_minimum_required(VERSION 3.25)
if(NOT EXISTS "${PLUGIN}")
  message(FATAL_ERROR "check_pure_c: ${PLUGIN} does not exist (build its target first)")
endif()
if(NOT READELF)
  set(READELF readelf)
endif()
execute_process(COMMAND "${READELF}" -d "${PLUGIN}" OUTPUT_VARIABLE dynamic
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_pure_c: '${READELF} -d ${PLUGIN}' failed: ${err}")
endif()
string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*" needed "${dynamic}")
if(needed STREQUAL "")
  message(FATAL_ERROR "check_pure_c: no NEEDED entries in ${PLUGIN}; is it a shared library?")
endif()
foreach(entry IN LISTS needed)
  if(entry MATCHES "libstdc\\+\\+|libc\\+\\+")
    message(FATAL_ERROR "check_pure_c: ${PLUGIN} links the C++ runtime: ${entry}\n"
                        "The C example must prove the ABI needs nothing but C.")
  endif()
endforeach()
message(STATUS "check_pure_c: ${PLUGIN} needs only: ${needed}")
