# Image decoding / encoding and TF-exact resizing (src/image -> unet_image).
unet_add_test(NAME test_resize SOURCES tests/test_resize.c LIBS unet_image TIMEOUT 60)
if(EXISTS ${CMAKE_SOURCE_DIR}/tests/test_image.c)
  # the synthetic checks, which never skip; the real sets as their own tests,
  # reported as skipped (exit 77) where ../shared does not have them
  unet_add_test(NAME test_image SOURCES tests/test_image.c LIBS unet_image TIMEOUT 120)
  foreach(set pets membrane)
    add_test(NAME test_image_${set} COMMAND test_image ${set})
    set_tests_properties(test_image_${set} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120 ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
  endforeach()
endif()
