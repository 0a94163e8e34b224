{
  "targets": [
    {
      "target_name": "herald_send",
      "sources": ["src/herald_send.c"],
      "cflags": ["-O2"]
    }
  ]
}
