build/obj/providers/page.o: ../../providers/page.c \
  ../../providers/provider.h ../../providers/conf.h \
  ../../providers/http.h

../../providers/provider.h:

../../providers/conf.h:

../../providers/http.h:
