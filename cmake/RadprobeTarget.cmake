# Every radprobe component is declared the same way:
#   radprobe_add_library(NAME imaging SOURCES a.cpp b.cpp DEPENDS core PRIVATE_DEPENDS GDCM::gdcmMSFF
#                        [TORCH])
# builds a static library `radprobe_<name>` from src/<name>/, public headers under
# src/<name>/include/radprobe/<name>/, warnings as errors. TORCH links LibTorch publicly and reuses
# the shared precompiled LibTorch header.

# -Wno-restrict, -Wno-stringop-overflow: GCC 12 reports false positives inside std::string at -O3
# (GCC bugs 105329, 105651).
set(RADPROBE_WARNINGS -Wall -Wextra -Wpedantic -Werror -Wno-unused-parameter -Wno-restrict
    -Wno-stringop-overflow)
# GCC's flow warnings (-Wmaybe-uninitialized inside <regex>, ...) misfire on sanitizer-instrumented
# code: the sanitizer build reports them without failing; the Release build is the -Werror gate.
if(RADPROBE_SANITIZE)
    list(APPEND RADPROBE_WARNINGS -Wno-error)
endif()

# One precompiled header for every LibTorch-heavy translation unit.
add_library(radprobe_torch_pch OBJECT ${CMAKE_SOURCE_DIR}/cmake/torch_pch.cpp)
target_link_libraries(radprobe_torch_pch PUBLIC ${TORCH_LIBRARIES})
target_compile_options(radprobe_torch_pch PRIVATE ${RADPROBE_WARNINGS})
target_precompile_headers(radprobe_torch_pch PRIVATE ${CMAKE_SOURCE_DIR}/cmake/torch_pch.hpp)

function(radprobe_use_torch target)
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "EXECUTABLE")
        # The shared header is compiled with -fPIC; an executable would get -fPIE, which GCC
        # refuses to mix with it. -fPIC code links into a PIE executable just the same.
        set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
        target_compile_options(${target} PRIVATE -fPIC)
    endif()
    target_link_libraries(${target} PUBLIC ${TORCH_LIBRARIES})
    target_precompile_headers(${target} REUSE_FROM radprobe_torch_pch)
endfunction()

function(radprobe_add_library)
    cmake_parse_arguments(ARG "TORCH" "NAME" "SOURCES;DEPENDS;PRIVATE_DEPENDS" ${ARGN})
    set(target radprobe_${ARG_NAME})
    add_library(${target} STATIC ${ARG_SOURCES})
    add_library(radprobe::${ARG_NAME} ALIAS ${target})
    target_include_directories(${target} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_compile_options(${target} PRIVATE ${RADPROBE_WARNINGS})
    foreach(dep IN LISTS ARG_DEPENDS)
        if(TARGET radprobe_${dep})
            target_link_libraries(${target} PUBLIC radprobe_${dep})
        else()
            target_link_libraries(${target} PUBLIC ${dep})
        endif()
    endforeach()
    target_link_libraries(${target} PRIVATE ${ARG_PRIVATE_DEPENDS})
    if(ARG_TORCH)
        radprobe_use_torch(${target})
    endif()
endfunction()

# radprobe_add_test(NAME imaging SOURCES ... DEPENDS ... LABELS unit [TORCH] [SLOW filter])
# One GoogleTest binary per component, discovered by ctest with labels and named
# "<NAME>.<Suite>.<Test>" (so `ctest -R '^adapt_'` runs a component's tests). SLOW is a GoogleTest
# filter ("Suite.Test:Suite.Other*") of the binary's heavy tests (minutes of training): they are
# labelled `slow` instead of LABELS, so that `ctest -L unit` stays a quick loop.
function(radprobe_add_test)
    cmake_parse_arguments(ARG "TORCH" "NAME;TIMEOUT;SLOW" "SOURCES;DEPENDS;LABELS" ${ARGN})
    set(target test_${ARG_NAME})
    add_executable(${target} ${ARG_SOURCES})
    # Tests build many strings by concatenation, where GCC 12 -O3 also reports false
    # -Warray-bounds positives inside std::string.
    target_compile_options(${target} PRIVATE ${RADPROBE_WARNINGS} -Wno-array-bounds)
    foreach(dep IN LISTS ARG_DEPENDS)
        if(TARGET radprobe_${dep})
            target_link_libraries(${target} PRIVATE radprobe_${dep})
        else()
            target_link_libraries(${target} PRIVATE ${dep})
        endif()
    endforeach()
    target_link_libraries(${target} PRIVATE GTest::gtest GTest::gtest_main)
    target_compile_definitions(${target} PRIVATE
        RADPROBE_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
        RADPROBE_BINARY="$<TARGET_FILE:radprobe>")
    if(ARG_TORCH)
        radprobe_use_torch(${target})
    endif()
    if(NOT ARG_TIMEOUT)
        set(ARG_TIMEOUT 600)
    endif()
    # OMP_WAIT_POLICY=PASSIVE, as the radprobe binary sets for itself (src/cli/main.cpp): LibTorch
    # inside a test process otherwise spins OpenMP threads against OpenBLAS's own (measured: a
    # fine-tuning test 125 s → 8 s on 2 busy cores).
    if(ARG_SLOW)
        gtest_discover_tests(${target} TEST_FILTER "-${ARG_SLOW}" TEST_PREFIX "${ARG_NAME}."
            PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
                ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE"
            DISCOVERY_TIMEOUT 60)
        gtest_discover_tests(${target} TEST_FILTER "${ARG_SLOW}" TEST_PREFIX "${ARG_NAME}."
            PROPERTIES LABELS "slow" TIMEOUT ${ARG_TIMEOUT}
                ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE"
            DISCOVERY_TIMEOUT 60)
    else()
        gtest_discover_tests(${target} TEST_PREFIX "${ARG_NAME}."
            PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
                ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE"
            DISCOVERY_TIMEOUT 60)
    endif()
    add_dependencies(${target} radprobe)
endfunction()
