build/obj/providers/nango.o: ../../providers/nango.c \
  ../../providers/buf.h ../../providers/json.h \
  ../../providers/provider.h ../../providers/conf.h \
  ../../providers/http.h ../../providers/secret.h

../../providers/buf.h:

../../providers/json.h:

../../providers/provider.h:

../../providers/conf.h:

../../providers/http.h:

../../providers/secret.h:
