# bpf_skeleton(NAME SOURCE): compiles SOURCE with clang for the BPF target and
# generates ${CMAKE_BINARY_DIR}/bpf/NAME.skel.h with bpftool, so that the
# binaries embed the object and read nothing from disk at run time.
find_program(CLANG_EXE NAMES clang clang-16 clang-15 clang-14 REQUIRED)
find_program(BPFTOOL_EXE NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)
# Ubuntu's /usr/sbin/bpftool is a wrapper that fails unless the running
# kernel's linux-tools are installed; then use any installed bpftool that runs.
execute_process(COMMAND ${BPFTOOL_EXE} version RESULT_VARIABLE bpftool_rc OUTPUT_QUIET ERROR_QUIET)
if(NOT bpftool_rc EQUAL 0)
  file(GLOB bpftool_candidates /usr/lib/linux-tools/*/bpftool)
  foreach(candidate ${bpftool_candidates})
    execute_process(COMMAND ${candidate} version RESULT_VARIABLE bpftool_rc OUTPUT_QUIET ERROR_QUIET)
    if(bpftool_rc EQUAL 0)
      set(BPFTOOL_EXE ${candidate} CACHE FILEPATH "bpftool" FORCE)
      break()
    endif()
  endforeach()
  if(NOT bpftool_rc EQUAL 0)
    message(FATAL_ERROR "${BPFTOOL_EXE} does not run ('bpftool version' failed): "
                        "run packaging/install-deps.sh, or install linux-tools for your kernel")
  endif()
endif()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64")
  set(BPF_TARGET_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64")
  set(BPF_TARGET_ARCH arm64)
else()
  set(BPF_TARGET_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
  OUTPUT_VARIABLE BPF_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)

function(bpf_skeleton name source)
  set(out_dir ${CMAKE_BINARY_DIR}/bpf)
  set(obj ${out_dir}/${name}.bpf.o)
  set(skel ${out_dir}/${name}.skel.h)
  get_filename_component(src_dir ${source} DIRECTORY)
  file(GLOB headers ${src_dir}/*.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${CLANG_EXE} -g -O2 -Wall -target bpf -D__TARGET_ARCH_${BPF_TARGET_ARCH}
            -I${src_dir} -I/usr/include/${BPF_MULTIARCH} -c ${source} -o ${obj}
    DEPENDS ${source} ${headers}
    COMMENT "BPF ${name}.bpf.c")
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL_EXE} gen skeleton ${obj} name ${name}_bpf > ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}.skel.h")
  add_custom_target(${name}_skel DEPENDS ${skel})
endfunction()
