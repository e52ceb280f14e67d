# check_abi_lock_test.cmake: proves that the abi_lock check hashes plugin.h's declarations, not
# its comments, by running check_abi_lock.cmake on edited copies of the header.
#
#   cmake -DHEADER=<plugin.h> -DLOCK=<sdk/abi.lock> -DCHECKER=<check_abi_lock.cmake>
#         -DWORK=<scratch dir> -P check_abi_lock_test.cmake
#
# Must pass against the real lock: the header as it is; comments reworded, added (also /* */
# and // with quotes and slashes inside) and removed; blank lines and a re-wrapped declaration.
# Must fail: a field's type changed; a function appended to troupe_host_api_t; a string literal
# changed; a declaration commented out. And a new version (minor bump) is "not recorded" until
# -DRECORD=ON appends it to a copy of the lock, after which it passes.
cmake_minimum_required(VERSION 3.25)

foreach(var HEADER LOCK CHECKER WORK)
  if(NOT ${var})
    message(FATAL_ERROR "usage: cmake -DHEADER=<plugin.h> -DLOCK=<abi.lock> "
                        "-DCHECKER=<check_abi_lock.cmake> -DWORK=<dir> -P check_abi_lock_test.cmake")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
file(READ "${HEADER}" original)
set(failures 0)

# Sets <var> to <text> with the one occurrence of <from> replaced by <to>; fails loudly when
# <from> is not in the header (then this test needs updating, not the header).
function(edit var text from to)
  string(FIND "${text}" "${from}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "check_abi_lock_test: plugin.h no longer contains '${from}'")
  endif()
  string(REPLACE "${from}" "${to}" text "${text}")
  set(${var} "${text}" PARENT_SCOPE)
endfunction()

# Runs the checker on <text> as the header and <lock>; expects it to pass (expect = PASS) or
# to fail with a message containing <needle> (expect = FAIL). Extra arguments go to cmake.
function(expect_check name text lock expect needle)
  set(header "${WORK}/${name}/troupe/plugin.h")
  file(WRITE "${header}" "${text}")
  execute_process(COMMAND "${CMAKE_COMMAND}" -DHEADER=${header} -DLOCK=${lock} ${ARGN}
                          -P "${CHECKER}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(ok FALSE)
  if(expect STREQUAL "PASS" AND rc EQUAL 0)
    set(ok TRUE)
  elseif(expect STREQUAL "FAIL" AND NOT rc EQUAL 0)
    string(REGEX REPLACE "[ \t\r\n]+" " " flat "${err}")  # CMake wraps long messages
    string(FIND "${flat}" "${needle}" at)
    if(NOT at EQUAL -1)
      set(ok TRUE)
    endif()
  endif()
  if(ok)
    message(STATUS "ok   ${name}: ${expect}")
  else()
    message(SEND_ERROR "FAIL ${name}: expected ${expect} '${needle}', got exit ${rc}\n${out}${err}")
  endif()
endfunction()

set(changed "changed but its ABI version is still")

# 1. The header as it is matches the lock.
expect_check(unchanged "${original}" "${LOCK}" PASS "")

# 2. Comment and layout edits only.
set(text "${original}")
string(FIND "${text}" "*/" end_of_first)  # drop the whole opening comment
math(EXPR end_of_first "${end_of_first} + 2")
string(SUBSTRING "${text}" ${end_of_first} -1 text)
edit(text "${text}" "/* A borrowed UTF-8 string. ptr may be NULL only when len is 0. */"
     "/* Reworded: a string // with slashes, \"quotes\" and 'apostrophes'. */\n\n\n// more\n")
edit(text "${text}" "  const char* ptr;\n  size_t len;" "  const char *ptr ;   size_t\n      len;")
edit(text "${text}" "typedef uint64_t troupe_handle_t;" "typedef uint64_t troupe_handle_t;  // noted")
edit(text "${text}" "#define TROUPE_ABI_MINOR " "#define   TROUPE_ABI_MINOR /* minor */ ")
expect_check(comments_and_layout "${text}" "${LOCK}" PASS "")

# 3. Declaration edits.
edit(text "${original}" "uint32_t retry_after_ms;" "uint64_t retry_after_ms;")
expect_check(field_type "${text}" "${LOCK}" FAIL "${changed}")

edit(text "${original}" "  uint64_t (*now_ns)(troupe_host_t* host);\n"
     "  uint64_t (*now_ns)(troupe_host_t* host);\n  void (*extra)(troupe_host_t* host);\n")
expect_check(appended_function "${text}" "${LOCK}" FAIL "${changed}")

edit(text "${original}" "\"troupe_plugin_describe\"" "\"troupe_plugin_describe_v2\"")
expect_check(string_literal "${text}" "${LOCK}" FAIL "${changed}")

edit(text "${original}" "  bool retryable;" "  /* bool retryable; */")
expect_check(commented_out "${text}" "${LOCK}" FAIL "${changed}")

# 4. A new minor version: refused until recorded, then accepted (on a copy of the lock).
string(REGEX MATCH "#define TROUPE_ABI_MINOR ([0-9]+)" _ "${original}")
math(EXPR next_minor "${CMAKE_MATCH_1} + 1")
edit(text "${original}" "${CMAKE_MATCH_0}" "#define TROUPE_ABI_MINOR ${next_minor}")
edit(text "${text}" "  uint64_t (*now_ns)(troupe_host_t* host);\n"
     "  uint64_t (*now_ns)(troupe_host_t* host);\n  void (*extra)(troupe_host_t* host);\n")
file(COPY_FILE "${LOCK}" "${WORK}/abi.lock")
expect_check(new_minor "${text}" "${WORK}/abi.lock" FAIL "is not recorded in")
expect_check(new_minor_record "${text}" "${WORK}/abi.lock" PASS "" -DRECORD=ON)
expect_check(new_minor_recorded "${text}" "${WORK}/abi.lock" PASS "")
edit(text "${text}" "/* A borrowed UTF-8 string." "/* A borrowed string, reworded.")
expect_check(new_minor_comment "${text}" "${WORK}/abi.lock" PASS "")
expect_check(released_stays "${original}" "${WORK}/abi.lock" PASS "")
