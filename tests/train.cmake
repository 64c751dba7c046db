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
unet_add_script_test(test_train_pipeline test_train_pipeline.sh 900 "train;mpi")
unet_add_script_test(test_cli test_cli.sh 300 "train")
unet_add_script_test(test_predict test_predict.sh 300 "train;mpi")
unet_add_script_test(test_train_own_data test_train_own_data.sh 600 "train;mpi")
add_executable(test-comm tests/test_comm.c)
target_link_libraries(test-comm PRIVATE unet_dist)
target_include_directories(test-comm PRIVATE ${CMAKE_SOURCE_DIR}/tests)
unet_add_script_test(test_comm test_comm.sh 300 "mpi")
# Class weights, ignored pixels in the confusion matrix and the weighted loss, by hand.
unet_add_test(NAME test_class_weights SOURCES tests/test_class_weights.c LIBS unet_trainer TIMEOUT 60)
# unet-evaluate against hand-computed metrics, on 1 and 3 ranks.
unet_add_test(NAME test_evaluate SOURCES tests/test_evaluate.c LIBS unet_trainer TIMEOUT 120 LABELS "mpi")
add_dependencies(test_evaluate unet-evaluate)
# The ISBI membrane set end to end (preprocess, train, evaluate, predict at 512x512); skips without it.
add_test(NAME test_isbi COMMAND bash ${CMAKE_SOURCE_DIR}/tests/test_isbi.sh ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
set_tests_properties(test_isbi PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS "train;mpi;slow"
  ENVIRONMENT "UNET_SHARED_DIR=${UNET_SHARED_DIR};OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;ASAN_OPTIONS=detect_leaks=0")
# Segmentation metrics (src/train/metrics.c) against hand-computed confusion matrices.
unet_add_test(NAME test_metrics SOURCES tests/test_metrics.c LIBS unet_trainer TIMEOUT 60)
# The stall watchdog: SIGSTOP on one rank of 3 (a random step, validation, rank 0's checkpoint) ends the job with exit 5 naming it.
unet_add_script_test(test_train_stall test_train_stall.sh 300 "train;mpi")
# Three hosts as network namespaces, mpirun over TCP through tests/netns_rsh_agent.sh; skips without root/ip netns.
unet_add_script_test(test_multihost test_multihost.sh 300 "train;mpi")
# One short training with --mca btl tcp,self over loopback, bit-identical to shared memory.
unet_add_script_test(test_train_tcp test_train_tcp.sh 300 "train;mpi")
# Checksummed data end to end: a shard with a flipped bit in one image, a
# checkpoint with a flipped bit in its weights; both end the job cleanly.
add_executable(h5-data-offset tests/tools/h5_data_offset.c)
target_link_libraries(h5-data-offset PRIVATE unet_h5)
unet_add_script_test(test_train_corrupt test_train_corrupt.sh 300 "train;mpi")
# The fuzz pass's judge of sanitizer reports (jobs/fuzz.sh --classify).
unet_add_script_test(test_fuzz_classify test_fuzz_classify.sh 60 "")
