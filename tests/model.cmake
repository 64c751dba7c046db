unet_add_test(NAME test_model SOURCES tests/test_model.c LIBS unet_nn TIMEOUT 600)
unet_add_test(NAME test_golden SOURCES tests/test_golden.c LIBS unet_nn unet_data)
# An ignored pixel changes neither the loss nor any gradient of the whole model.
unet_add_test(NAME test_ignore_model SOURCES tests/test_ignore_model.c LIBS unet_nn TIMEOUT 120)
