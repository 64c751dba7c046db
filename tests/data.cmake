# Tests of the data pipeline: the shard schema (unet_data) and the two tools
# unet-synth / unet-preprocess, driven as a user would run them.
unet_add_test(NAME test_shard SOURCES tests/test_shard.c LIBS unet_data TIMEOUT 60)
