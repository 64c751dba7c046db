unet_add_test(NAME test_model SOURCES tests/test_model.c LIBS unet_nn TIMEOUT 600)
unet_add_test(NAME test_golden SOURCES tests/test_golden.c LIBS unet_nn unet_data)
# An ignored pixel changes neither the loss nor any gradient of the whole model.
unet_add_test(NAME test_ignore_model SOURCES tests/test_ignore_model.c LIBS unet_nn TIMEOUT 120)
# A training step allocates nothing (the layers' scratch is planned in the model).
unet_add_test(NAME test_no_alloc SOURCES tests/test_no_alloc.c LIBS unet_nn TIMEOUT 120)
# Flip test-time augmentation: the averaged logits of an image and its mirror, bit-exact.
unet_add_test(NAME test_tta SOURCES tests/test_tta.c LIBS unet_nn TIMEOUT 120)
