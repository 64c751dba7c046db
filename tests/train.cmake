# End-to-end trainer tests (shell scripts driving the real programs).
add_executable(compare-h5 tests/tools/compare_h5.c)
target_link_libraries(compare-h5 PRIVATE unet_data)
function(unet_add_script_test name script timeout labels)
  add_test(NAME ${name} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/${script} ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT ${timeout} LABELS "${labels}"
    ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;ASAN_OPTIONS=detect_leaks=0")
endfunction()
unet_add_script_test(test_train_basic test_train_basic.sh 600 "train")
unet_add_script_test(test_train_ranks test_train_ranks.sh 900 "train;mpi")
unet_add_script_test(test_train_resume test_train_resume.sh 900 "train;slow")
unet_add_script_test(test_train_faults test_train_faults.sh 900 "train;mpi")
