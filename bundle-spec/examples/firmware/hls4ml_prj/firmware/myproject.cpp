// placeholder top function of an hls4ml project (example layout only)
