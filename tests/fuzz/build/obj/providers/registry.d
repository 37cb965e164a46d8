build/obj/providers/registry.o: ../../providers/registry.c \
  ../../providers/provider.h ../../providers/conf.h \
  ../../providers/http.h

../../providers/provider.h:

../../providers/conf.h:

../../providers/http.h:
