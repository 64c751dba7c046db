# Image decoding / encoding and TF-exact resizing (src/image -> unet_image).
unet_add_test(NAME test_resize SOURCES tests/test_resize.c LIBS unet_image TIMEOUT 60)
if(EXISTS ${CMAKE_SOURCE_DIR}/tests/test_image.c)
  unet_add_test(NAME test_image SOURCES tests/test_image.c LIBS unet_image TIMEOUT 120)
endif()
