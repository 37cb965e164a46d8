build/obj/providers/workato.o: ../../providers/workato.c \
  ../../providers/buf.h ../../providers/json.h \
  ../../providers/provider.h ../../providers/conf.h \
  ../../providers/http.h ../../providers/secret.h

../../providers/buf.h:

../../providers/json.h:

../../providers/provider.h:

../../providers/conf.h:

../../providers/http.h:

../../providers/secret.h:
