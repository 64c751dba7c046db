# End-to-end SLURM test: starts a single-node cluster (jobs/slurm-local.sh), runs
# jobs/train.sbatch on synthetic data, then stops a job with SIGUSR1 and checks that it
# requeues and resumes. Skips (77) when not root or slurm-wlm/munge are missing or the
# daemons cannot start. Label "slow": about a minute, and left out of the sanitizer pass.
add_test(NAME test_slurm
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/test_slurm.sh ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
set_tests_properties(test_slurm PROPERTIES
  SKIP_RETURN_CODE 77
  TIMEOUT 600
  LABELS "slow"
  # the SLURM daemons and the jobs' state are machine-wide: never two of these at once
  RESOURCE_LOCK slurm_cluster
  ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
