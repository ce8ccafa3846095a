/* The plain C API, as another language's bindings would use it. */
#include <stdio.h>

#include "hepbundle/hepbundle.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: c_api REF FILE\n");
    return 2;
  }
  hepbundle_bundle* b = hepbundle_resolve(argv[1], NULL, 0);
  if (!b) {
    fprintf(stderr, "%s: %s\n", hepbundle_error_class(), hepbundle_error_message());
    return hepbundle_error_code();
  }
  char* path = hepbundle_path(b, argv[2]);
  if (!path) {
    fprintf(stderr, "%s: %s\n", hepbundle_error_class(), hepbundle_error_message());
    hepbundle_close(b);
    return hepbundle_error_code();
  }
  printf("%s\n", path);
  hepbundle_free(path);
  hepbundle_close(b);
  return 0;
}
