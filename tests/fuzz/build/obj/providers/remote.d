build/obj/providers/remote.o: ../../providers/remote.c \
  ../../providers/remote.h ../../providers/conf.h \
  ../../providers/provider.h ../../providers/http.h \
  ../../providers/ratelimit.h

../../providers/remote.h:

../../providers/conf.h:

../../providers/provider.h:

../../providers/http.h:

../../providers/ratelimit.h:
