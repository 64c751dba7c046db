# Benchmarks: built with the tests, run by hand (see README "Speed and memory").
add_executable(bench-train tests/bench/bench_train.c)
target_link_libraries(bench-train PRIVATE unet_nn unet_dist)
add_executable(bench-augment tests/bench/bench_augment.c)
target_link_libraries(bench-augment PRIVATE unet_data)
