# check_abi_lock.cmake: fails when the DECLARATIONS of sdk/include/troupe/plugin.h changed
# without an ABI version bump. Comments and layout are not declarations: they may change freely.
#
#   cmake -DHEADER=<plugin.h> -DLOCK=<sdk/abi.lock> -P check_abi_lock.cmake
#   cmake -DHEADER=... -DLOCK=... -DRECORD=ON -P check_abi_lock.cmake    # record a new version
#   cmake -DHEADER=... -DLOCK=... -DDUMP=<file> -P check_abi_lock.cmake  # write what is hashed
#
# sdk/abi.lock has one line per released ABI version: "<major>.<minor> <sha256>", the hash of
# the header's declarations (below). The header's TROUPE_ABI_MAJOR.MINOR must be recorded there
# with exactly that hash; a changed declaration therefore needs a new version (plugins built
# against the old header would otherwise be accepted by a host whose structs differ from theirs).
#
# The declarations are the header with every /* */ and // comment removed and its layout
# normalized, so that only a change a compiler could see changes the hash:
#   - a comment counts as one space; string and character literals are kept verbatim;
#   - a preprocessor line is kept as one line, its blank runs collapsed to one space;
#   - everywhere else line breaks and blanks are dropped, except one space between two
#     identifiers or numbers ("const char* p;" and "const char *p ;" are the same).
# (Two punctuators that become one token when joined, like "- -", would hash alike; a header of
# declarations has none.) Run with -DDUMP to see the text: that is what the hash covers.
cmake_minimum_required(VERSION 3.25)

if(NOT HEADER OR NOT LOCK)
  message(FATAL_ERROR "usage: cmake -DHEADER=<plugin.h> -DLOCK=<abi.lock> [-DRECORD=ON] "
                      "[-DDUMP=<file>] -P check_abi_lock.cmake")
endif()
if(NOT EXISTS "${HEADER}")
  message(FATAL_ERROR "abi_lock: header not found: ${HEADER}")
endif()

# Removes comments from C text; each string or character literal is replaced by a placeholder
# @<n>@ and kept in the caller's variable abi_literal_<n>, so later steps cannot touch it.
# Sets <out_var> to the text and abi_literal_count to n.
function(abi_strip_comments text out_var)
  set(rest "${text}")
  set(code "")
  set(n 0)
  while(NOT rest STREQUAL "")
    string(REGEX MATCH "^[^/\"']+" plain "${rest}")
    if(NOT plain STREQUAL "")
      string(APPEND code "${plain}")
      string(LENGTH "${plain}" len)
      string(SUBSTRING "${rest}" ${len} -1 rest)
      continue()
    endif()
    string(SUBSTRING "${rest}" 0 2 head)
    if(head STREQUAL "/*")
      string(SUBSTRING "${rest}" 2 -1 rest)
      string(FIND "${rest}" "*/" end)
      if(end EQUAL -1)
        message(FATAL_ERROR "abi_lock: unterminated /* comment in ${HEADER}")
      endif()
      math(EXPR end "${end} + 2")
      string(SUBSTRING "${rest}" ${end} -1 rest)
      string(APPEND code " ")
    elseif(head STREQUAL "//")
      string(FIND "${rest}" "\n" end)
      if(end EQUAL -1)
        set(rest "")
      else()
        string(SUBSTRING "${rest}" ${end} -1 rest)  # the line break stays: it ends a directive
      endif()
      string(APPEND code " ")
    elseif(head MATCHES "^[\"']")
      string(SUBSTRING "${head}" 0 1 quote)
      string(REGEX MATCH "^${quote}([^${quote}\\\\\n]|\\\\.)*${quote}" literal "${rest}")
      if(literal STREQUAL "")
        message(FATAL_ERROR "abi_lock: unterminated literal in ${HEADER}")
      endif()
      set(abi_literal_${n} "${literal}" PARENT_SCOPE)
      string(APPEND code "@${n}@")
      math(EXPR n "${n} + 1")
      string(LENGTH "${literal}" len)
      string(SUBSTRING "${rest}" ${len} -1 rest)
    else()  # a lone '/'
      string(APPEND code "/")
      string(SUBSTRING "${rest}" 1 -1 rest)
    endif()
  endwhile()
  set(${out_var} "${code}" PARENT_SCOPE)
  set(abi_literal_count ${n} PARENT_SCOPE)
endfunction()

# Drops the blanks of C code (no preprocessor lines in it) except between two word characters,
# then breaks the line after each ';' and '{'.
function(abi_squeeze_code text out_var)
  string(REGEX REPLACE "[ \t\r\n]+" " " text "${text}")
  string(REGEX REPLACE "([^A-Za-z0-9_]) " "\\1" text "${text}")
  string(REGEX REPLACE " ([^A-Za-z0-9_])" "\\1" text "${text}")
  string(STRIP "${text}" text)
  string(REPLACE ";" ";\n" text "${text}")  # one declaration a line, for readable diffs
  string(REPLACE "{" "{\n" text "${text}")
  set(${out_var} "${text}" PARENT_SCOPE)
endfunction()

# Sets <out_var> to the declarations of the C header text (see the top of this file).
function(abi_declarations text out_var)
  abi_strip_comments("${text}" code)
  string(REPLACE "\\\n" " " code "${code}")  # line continuations
  string(REPLACE "\r" "" code "${code}")
  set(out "")
  set(pending "")  # code lines since the last preprocessor line
  set(rest "${code}\n")
  while(NOT rest STREQUAL "")
    string(FIND "${rest}" "\n" nl)
    string(SUBSTRING "${rest}" 0 ${nl} line)
    math(EXPR nl "${nl} + 1")
    string(SUBSTRING "${rest}" ${nl} -1 rest)
    string(STRIP "${line}" line)
    if(line MATCHES "^#")
      abi_squeeze_code("${pending}" squeezed)
      set(pending "")
      string(REGEX REPLACE "[ \t]+" " " line "${line}")
      string(APPEND out "${squeezed}\n${line}\n")
    else()
      string(APPEND pending " ${line}")
    endif()
  endwhile()
  abi_squeeze_code("${pending}" squeezed)
  string(APPEND out "${squeezed}\n")
  string(REGEX REPLACE "\n\n+" "\n" out "${out}")
  string(REGEX REPLACE "^\n" "" out "${out}")
  if(abi_literal_count GREATER 0)
    math(EXPR last "${abi_literal_count} - 1")
    foreach(i RANGE ${last})
      string(REPLACE "@${i}@" "${abi_literal_${i}}" out "${out}")
    endforeach()
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

file(READ "${HEADER}" text)
abi_declarations("${text}" declarations)
if(DUMP)
  file(WRITE "${DUMP}" "${declarations}")
  message(STATUS "abi_lock: wrote the declarations of ${HEADER} to ${DUMP}")
endif()
string(REGEX MATCH "\n#define TROUPE_ABI_MAJOR ([0-9]+)\n" _ "\n${declarations}")
set(major "${CMAKE_MATCH_1}")
string(REGEX MATCH "\n#define TROUPE_ABI_MINOR ([0-9]+)\n" _ "\n${declarations}")
set(minor "${CMAKE_MATCH_1}")
if(major STREQUAL "" OR minor STREQUAL "")
  message(FATAL_ERROR "abi_lock: could not find '#define TROUPE_ABI_MAJOR <n>' and "
                      "'#define TROUPE_ABI_MINOR <n>' in ${HEADER}")
endif()
set(version "${major}.${minor}")
string(SHA256 hash "${declarations}")

# Parse the lock: version -> hash, and the newest version recorded.
set(recorded_hash "")
set(newest "")
if(EXISTS "${LOCK}")
  file(STRINGS "${LOCK}" lines)
  foreach(line IN LISTS lines)
    if(line MATCHES "^[ \t]*(#|$)")
      continue()
    endif()
    if(NOT line MATCHES "^([0-9]+)\\.([0-9]+)[ \t]+([0-9a-f]+)[ \t]*$")
      message(FATAL_ERROR "abi_lock: malformed line in ${LOCK}: '${line}' "
                          "(expected '<major>.<minor> <sha256>')")
    endif()
    set(v "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}")
    if(v STREQUAL version)
      set(recorded_hash "${CMAKE_MATCH_3}")
    endif()
    if(newest STREQUAL "" OR v VERSION_GREATER newest)
      set(newest "${v}")
    endif()
  endforeach()
endif()

string(CONCAT how_to_record
       "To record a new ABI version: bump TROUPE_ABI_MINOR in plugin.h when you only appended "
       "(new fields at the end of a struct, new functions at the end of troupe_host_api_t, new "
       "enum values), or TROUPE_ABI_MAJOR (and reset MINOR to 0) for anything else; then run\n"
       "  cmake -DHEADER=${HEADER} -DLOCK=${LOCK} -DRECORD=ON -P ${CMAKE_CURRENT_LIST_FILE}\n"
       "which appends '<major>.<minor> <sha256>' to the lock. (Only while a version has never "
       "been released may its line be deleted and recorded again.) Comments need no new version: "
       "they are not hashed.")

if(recorded_hash STREQUAL hash)
  message(STATUS "abi_lock: the declarations of plugin.h match ABI ${version} (${hash})")
  return()
endif()

if(NOT recorded_hash STREQUAL "")
  message(FATAL_ERROR
          "abi_lock: the declarations of plugin.h changed but its ABI version is still "
          "${version}.\n"
          "  recorded for ${version}: ${recorded_hash}\n"
          "  the declarations now hash to: ${hash}\n"
          "A released ABI version is frozen: a changed declaration (a type, field, function, "
          "constant or macro; not a comment or the layout) needs a new version, so the lock "
          "proves what each version means. -DDUMP=<file> writes the hashed text, to diff.\n"
          "${how_to_record}")
endif()

# The version is not recorded yet.
if(NOT newest STREQUAL "" AND NOT version VERSION_GREATER newest)
  message(FATAL_ERROR
          "abi_lock: plugin.h declares ABI ${version}, which is not newer than ${newest}, the "
          "newest version in ${LOCK}. Versions only go up.\n${how_to_record}")
endif()
if(RECORD)
  file(APPEND "${LOCK}" "${version} ${hash}\n")
  message(STATUS "abi_lock: recorded ABI ${version} ${hash} in ${LOCK}")
  return()
endif()
message(FATAL_ERROR "abi_lock: ABI ${version} of plugin.h is not recorded in ${LOCK}.\n"
                    "  its declarations hash to: ${hash}\n${how_to_record}")
