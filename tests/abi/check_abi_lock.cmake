# check_abi_lock.cmake: fails when sdk/include/troupe/plugin.h changed without an ABI version bump.
#
#   cmake -DHEADER=<plugin.h> -DLOCK=<sdk/abi.lock> -P check_abi_lock.cmake
#   cmake -DHEADER=... -DLOCK=... -DRECORD=ON -P check_abi_lock.cmake   # record a new version
#
# sdk/abi.lock has one line per released ABI version: "<major>.<minor> <sha256 of plugin.h>".
# The header's TROUPE_ABI_MAJOR.MINOR must be recorded there with the header's exact hash;
# a changed header therefore needs a new version (plugins built against the old header
# would otherwise be accepted by a host whose structs differ from theirs).
cmake_minimum_required(VERSION 3.25)

if(NOT HEADER OR NOT LOCK)
  message(FATAL_ERROR "usage: cmake -DHEADER=<plugin.h> -DLOCK=<abi.lock> [-DRECORD=ON] -P check_abi_lock.cmake")
endif()
if(NOT EXISTS "${HEADER}")
  message(FATAL_ERROR "abi_lock: header not found: ${HEADER}")
endif()

file(READ "${HEADER}" text)
string(REGEX MATCH "#define TROUPE_ABI_MAJOR ([0-9]+)" _ "${text}")
set(major "${CMAKE_MATCH_1}")
string(REGEX MATCH "#define TROUPE_ABI_MINOR ([0-9]+)" _ "${text}")
set(minor "${CMAKE_MATCH_1}")
if(major STREQUAL "" OR minor STREQUAL "")
  message(FATAL_ERROR "abi_lock: could not find '#define TROUPE_ABI_MAJOR <n>' and "
                      "'#define TROUPE_ABI_MINOR <n>' in ${HEADER}")
endif()
set(version "${major}.${minor}")
file(SHA256 "${HEADER}" hash)

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
       "been released may its line be deleted and recorded again.)")

if(recorded_hash STREQUAL hash)
  message(STATUS "abi_lock: plugin.h matches ABI ${version} (${hash})")
  return()
endif()

if(NOT recorded_hash STREQUAL "")
  message(FATAL_ERROR
          "abi_lock: plugin.h changed but its ABI version is still ${version}.\n"
          "  recorded for ${version}: ${recorded_hash}\n"
          "  plugin.h now hashes to: ${hash}\n"
          "A released ABI version is frozen: any change to plugin.h (even a comment) needs a "
          "new version, so the lock proves what each version means.\n${how_to_record}")
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
                    "  plugin.h hashes to: ${hash}\n${how_to_record}")
