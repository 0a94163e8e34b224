{
  "targets": [
    {
      "target_name": "bench_recv",
      "sources": ["src/bench_recv.c"],
      "cflags": ["-O2"],
      "libraries": ["-lpthread"]
    }
  ]
}
