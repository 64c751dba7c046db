# ONNX export checked by ONNX Runtime, and the learning-curve SVG.
add_executable(resized-rgb tests/tools/resized_rgb.c)
target_link_libraries(resized-rgb PRIVATE unet_image)
unet_add_test(NAME test_curves SOURCES tests/test_curves.c LIBS unet_trainer LABELS "curves")
add_test(NAME test_curves_browser COMMAND test_curves browser)
set_tests_properties(test_curves_browser PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS "curves"
  ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
add_test(NAME test_export COMMAND bash ${CMAKE_SOURCE_DIR}/tests/test_export.sh ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
set_tests_properties(test_export PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS "export"
  ENVIRONMENT "UNET_SHARED_DIR=${UNET_SHARED_DIR};OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;ASAN_OPTIONS=detect_leaks=0")
