{
  "targets": [
    {
      "target_name": "cairn_native",
      "sources": ["native/src/cairn_native.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-O3", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags!": ["-O2"]
    }
  ]
}
