unet_add_test(NAME test_model SOURCES tests/test_model.c LIBS unet_nn TIMEOUT 600)
